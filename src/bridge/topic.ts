// The destination topic of a msg: a fixed name, a mustache template over the msg (no HTML escaping), or
// msg.topic. Whatever comes out is checked as a topic name of the destination (Pulsar's, by default, or
// Kafka's) before anything is sent.
import Mustache from "mustache";
import { BridgeError } from "../common/errors";
import { parseTopicName } from "../pulsar/service-url";
import { PulsarError } from "../pulsar/errors";

export type TopicSource = "str" | "msg";

/** What a destination accepts as a topic name, and the catalog keys of its errors. */
export interface TopicRules {
  /** The broker's name of the topic; throws an Error saying why it is not one. */
  normalize(topic: string): string;
  /** "Pulsar" or "Kafka", for the error texts. */
  system: string;
  /** The node's error keys prefix: "<node>.errors.template" and "<node>.errors.invalid-topic". */
  node: string;
}

export const PULSAR_TOPICS: TopicRules = {
  normalize: (topic) => {
    try {
      return parseTopicName(topic).fullName;
    } catch (err) {
      throw new Error(err instanceof PulsarError ? err.message : String(err));
    }
  },
  system: "Pulsar",
  node: "pulsar-out",
};

/** Kafka's rule for topic names: 1 to 249 of [a-zA-Z0-9._-], neither "." nor "..". */
export const KAFKA_TOPICS: TopicRules = {
  normalize: (topic) => {
    if (topic === "" || topic.length > 249) throw new Error(`a name has 1 to 249 characters`);
    if (topic === "." || topic === "..") throw new Error(`"." and ".." are not topic names`);
    const bad = /[^a-zA-Z0-9._-]/.exec(topic);
    if (bad) throw new Error(`"${bad[0]}" is not allowed (letters, digits, ".", "_" and "-" are)`);
    return topic;
  },
  system: "Kafka",
  node: "kafka-out",
};

export class TopicResolver {
  private readonly template: boolean;
  private readonly fixed: string | undefined;

  constructor(
    private readonly setting: string,
    private readonly source: TopicSource,
    private readonly rules: TopicRules = PULSAR_TOPICS,
  ) {
    this.template = source === "str" && setting.includes("{{");
    if (this.template) {
      try {
        Mustache.parse(setting);
      } catch (err) {
        throw new BridgeError(
          `${rules.node}.errors.template`,
          `the topic template is invalid: ${(err as Error).message}`,
          false,
        );
      }
    }
    this.fixed = source === "str" && !this.template ? this.check(setting, "the topic setting") : undefined;
  }

  /** The topic when it does not depend on the msg. */
  get fixedTopic(): string | undefined {
    return this.fixed;
  }

  resolve(msg: Record<string, unknown>): string {
    if (this.fixed) return this.fixed;
    if (this.source === "msg") {
      if (typeof msg.topic !== "string" || msg.topic === "")
        throw new BridgeError(`${this.rules.node}.errors.invalid-topic`, "msg.topic is not set", false);
      return this.check(msg.topic, "msg.topic");
    }
    let rendered: string;
    try {
      rendered = Mustache.render(this.setting, msg, {}, { escape: (v: unknown) => String(v) });
    } catch (err) {
      throw new BridgeError(
        `${this.rules.node}.errors.template`,
        `the topic template failed: ${(err as Error).message}`,
        false,
      );
    }
    return this.check(rendered, `the topic "${rendered}" rendered from ${this.setting}`);
  }

  private check(topic: string, what: string): string {
    try {
      return this.rules.normalize(topic);
    } catch (err) {
      throw new BridgeError(
        `${this.rules.node}.errors.invalid-topic`,
        `${what} is not a valid ${this.rules.system} topic: ${(err as Error).message}`,
        false,
      );
    }
  }
}
