// The Pulsar topic of a msg: a fixed name, a mustache template over the msg (no HTML escaping), or
// msg.topic. Whatever comes out is checked as a Pulsar topic name before anything is sent.
import Mustache from "mustache";
import { BridgeError } from "../common/errors";
import { parseTopicName } from "../pulsar/service-url";
import { PulsarError } from "../pulsar/errors";

export type TopicSource = "str" | "msg";

export class TopicResolver {
  private readonly template: boolean;
  private readonly fixed: string | undefined;

  constructor(
    private readonly setting: string,
    private readonly source: TopicSource,
  ) {
    this.template = source === "str" && setting.includes("{{");
    if (this.template) {
      try {
        Mustache.parse(setting);
      } catch (err) {
        throw new BridgeError(
          "pulsar-out.errors.template",
          `the topic template is invalid: ${(err as Error).message}`,
          false,
        );
      }
    }
    this.fixed = source === "str" && !this.template ? check(setting, "the topic setting") : undefined;
  }

  /** The topic when it does not depend on the msg. */
  get fixedTopic(): string | undefined {
    return this.fixed;
  }

  resolve(msg: Record<string, unknown>): string {
    if (this.fixed) return this.fixed;
    if (this.source === "msg") {
      if (typeof msg.topic !== "string" || msg.topic === "")
        throw new BridgeError("pulsar-out.errors.invalid-topic", "msg.topic is not set", false);
      return check(msg.topic, "msg.topic");
    }
    let rendered: string;
    try {
      rendered = Mustache.render(this.setting, msg, {}, { escape: (v: unknown) => String(v) });
    } catch (err) {
      throw new BridgeError(
        "pulsar-out.errors.template",
        `the topic template failed: ${(err as Error).message}`,
        false,
      );
    }
    return check(rendered, `the topic "${rendered}" rendered from ${this.setting}`);
  }
}

function check(topic: string, what: string): string {
  try {
    return parseTopicName(topic).fullName;
  } catch (err) {
    const why = err instanceof PulsarError ? err.message : String(err);
    throw new BridgeError(
      "pulsar-out.errors.invalid-topic",
      `${what} is not a valid Pulsar topic: ${why}`,
      false,
    );
  }
}
