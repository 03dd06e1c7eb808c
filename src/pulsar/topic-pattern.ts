// Topic patterns: a regular expression over the topics of one namespace, as Pulsar's clients take them
// ("persistent://tenant/namespace/sensor-.*"). The namespace part is a plain name; the pattern is matched
// against each topic's whole local name (the partitions of a partitioned topic count as that topic).
import { InvalidTopicNameError } from "./errors";
import { ENTITY, parseTopicName, splitDomain } from "./service-url";

export interface TopicPattern {
  /** tenant/namespace */
  namespace: string;
  persistent: boolean;
  /** Matches a whole local name (no partition suffix). */
  regex: RegExp;
  /** The pattern as given, normalised to domain://tenant/namespace/regex. */
  text: string;
}

export function parseTopicPattern(pattern: string): TopicPattern {
  const bad = (why: string) => new InvalidTopicNameError(`invalid topic pattern "${pattern}": ${why}`);
  const text = String(pattern ?? "").trim();
  if (text === "") throw bad("it is empty");
  const { persistent, rest } = splitDomain(text, bad);
  const first = rest.indexOf("/");
  const second = first < 0 ? -1 : rest.indexOf("/", first + 1);
  if (second < 0) throw bad("expected tenant/namespace/regular-expression");
  const tenant = rest.slice(0, first);
  const ns = rest.slice(first + 1, second);
  const local = rest.slice(second + 1);
  if (!ENTITY.test(tenant) || !ENTITY.test(ns))
    throw bad("the tenant and namespace must be plain names (the expression is the topic part only)");
  if (local === "") throw bad("the expression is empty");
  let regex: RegExp;
  try {
    regex = new RegExp(`^(?:${local})$`, "u");
  } catch (err) {
    throw bad(`not a regular expression: ${err instanceof Error ? err.message : String(err)}`);
  }
  const domain = persistent ? "persistent" : "non-persistent";
  return { namespace: `${tenant}/${ns}`, persistent, regex, text: `${domain}://${tenant}/${ns}/${local}` };
}

/**
 * The topics of `names` (as a namespace listing gives them: partitions by their own names) that the
 * pattern matches, each once, as full names without a partition suffix, sorted.
 */
export function matchingTopics(names: readonly string[], pattern: TopicPattern): string[] {
  const out = new Set<string>();
  for (const name of names) {
    let t;
    try {
      t = parseTopicName(name);
    } catch {
      continue;
    }
    if (t.persistent !== pattern.persistent || `${t.tenant}/${t.namespace}` !== pattern.namespace) continue;
    const local = t.partitionIndex >= 0 ? t.localName.replace(/-partition-\d+$/, "") : t.localName;
    if (pattern.regex.test(local))
      out.add(`${pattern.persistent ? "persistent" : "non-persistent"}://${pattern.namespace}/${local}`);
  }
  return [...out].sort();
}
