// JSON text <-> values, keeping integers beyond 2^53 exact as BigInt (kafka-in's json format, schema
// registry records, pulsar-out's JSON bodies).
import { randomBytes } from "node:crypto";

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

/**
 * Whether the text has a run of 16 digits, which an integer beyond Number.MAX_SAFE_INTEGER
 * (9007199254740991) needs. Such a run covers one of every 16 positions, so only those are looked at:
 * this runs on every json record and costs a fraction of JSON.parse.
 */
function hasLongDigitRun(text: string): boolean {
  const n = text.length;
  for (let i = 15; i < n; i += 16) {
    if (!isDigit(text.charCodeAt(i))) continue;
    let start = i;
    while (start > 0 && isDigit(text.charCodeAt(start - 1))) start--;
    let end = i + 1;
    while (end < n && isDigit(text.charCodeAt(end))) end++;
    if (end - start >= 16) return true;
  }
  return false;
}

const JSON_INTEGER = /^-?(?:0|[1-9]\d*)$/;

function isNumberChar(c: number): boolean {
  // 0-9 . + - e E
  return isDigit(c) || c === 0x2e || c === 0x2b || c === 0x2d || c === 0x65 || c === 0x45;
}

/**
 * JSON.parse that keeps integers beyond 2^53 exact, as BigInt (safe integers and every other number stay
 * numbers; fractions and exponents are doubles, as JSON.parse makes them). Text without a run of 16 digits
 * cannot hold such an integer and goes straight to JSON.parse.
 */
export function parseJson(text: string): unknown {
  if (!hasLongDigitRun(text)) return JSON.parse(text);
  // Each unsafe integer literal outside strings is rewritten as a string tagged with a random prefix, so
  // that JSON.parse itself still checks the whole text; the reviver turns tagged strings into BigInt.
  const tag = `${randomBytes(8).toString("hex")}:`;
  let rewritten = "";
  let copiedUpTo = 0;
  const n = text.length;
  for (let i = 0; i < n;) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
      i++;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < n && isNumberChar(text.charCodeAt(j))) j++;
      if (j - i >= 16) {
        const token = text.slice(i, j);
        if (JSON_INTEGER.test(token) && !Number.isSafeInteger(Number(token))) {
          rewritten += `${text.slice(copiedUpTo, i)}"${tag}${token}"`;
          copiedUpTo = j;
        }
      }
      i = j;
    } else i++;
  }
  if (copiedUpTo === 0) return JSON.parse(text);
  rewritten += text.slice(copiedUpTo);
  try {
    return JSON.parse(rewritten, (name: string, value: unknown) => {
      // A number where JSON wants a property name: the original text is not JSON.
      if (name.startsWith(tag)) throw new SyntaxError("a number is not a property name");
      return typeof value === "string" && value.startsWith(tag) ? BigInt(value.slice(tag.length)) : value;
    });
  } catch (err) {
    JSON.parse(text); // the original's own error, with its positions
    throw err;
  }
}

/**
 * JSON text of a value. BigInt (what the json value format makes of integers beyond 2^53) has no JSON form
 * of its own and makes JSON.stringify throw: then the value is written again with each BigInt as its
 * digits, so a big integer read from Kafka goes out as the same digits.
 */
export function jsonText(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (err) {
    const tag = `${randomBytes(8).toString("hex")}:`;
    let tagged = false;
    const text = JSON.stringify(value, (_name, v: unknown) => {
      if (typeof v !== "bigint") return v;
      tagged = true;
      return tag + v.toString();
    });
    if (!tagged || text === undefined) throw err;
    return text.replace(new RegExp(`"${tag}(-?\\d+)"`, "g"), "$1");
  }
}

/**
 * Sets an own property even for the name "__proto__" (a Kafka header may be called that), which a plain
 * assignment would take for the object's prototype.
 */
export function setOwn<T>(target: Record<string, T>, name: string, value: T): void {
  if (name === "__proto__")
    Object.defineProperty(target, name, { value, writable: true, enumerable: true, configurable: true });
  else target[name] = value;
}
