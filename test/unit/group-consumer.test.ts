// Which partitions new to a kafka-in are read from offset 0 rather than from the group's commit, after a
// topic of the name was deleted and created again (GroupConsumer's look at the topics' ids).
import assert from "node:assert/strict";
import { test } from "node:test";
import { readAfresh } from "../../src/kafka/group-consumer";

const NEW = "bmV3LXRvcGljLWlkLTAwMA";
const OLD = "b2xkLXRvcGljLWlkLTAwMA";

test("a commit made for another topic id is not trusted; one for this id, or one without an id, is", () => {
  assert.equal(readAfresh({ offset: "100", metadata: `topic-id:${OLD}` }, NEW, undefined, false), true);
  assert.equal(readAfresh({ offset: "100", metadata: `topic-id:${NEW}` }, NEW, OLD, false), false);
  // an older version of the node, auto-commit, or another tool of the group
  assert.equal(readAfresh({ offset: "100", metadata: null }, NEW, OLD, false), false);
  assert.equal(readAfresh({ offset: "100", metadata: "something else" }, NEW, OLD, false), false);
});

test("no commit: read from 0 where this member read the topic as another id (Kafka deleted the commits with it)", () => {
  assert.equal(readAfresh({ offset: "-1", metadata: null }, NEW, OLD, false), true);
  assert.equal(readAfresh(undefined, NEW, OLD, false), true);
  // the same topic, or one this member never read: the node's "start from"
  assert.equal(readAfresh({ offset: "-1", metadata: null }, NEW, NEW, false), false);
  assert.equal(readAfresh({ offset: "-1", metadata: null }, NEW, undefined, false), false);
});

test("a reset to 0 still owed (its commit failed) is read from 0 again, whatever the group holds", () => {
  assert.equal(readAfresh({ offset: "100", metadata: `topic-id:${NEW}` }, NEW, NEW, true), true);
  assert.equal(readAfresh(undefined, NEW, NEW, true), true);
});
