// The Protobuf files Confluent's serializers do not register as references (they take them as known):
// Google's common types (google/type/*) and Confluent's own (confluent/meta.proto, its decimal). A schema
// that imports one names no reference for it, so their definitions are kept here: the messages, enums and
// field numbers of the published files, without their comments and options. (google/protobuf/* comes
// with protobufjs.)

const G = (body: string, imports: string[] = []) =>
  `syntax = "proto3";\npackage google.type;\n${imports.map((i) => `import "${i}";\n`).join("")}${body}`;

export const KNOWN_PROTOS: Readonly<Record<string, string>> = {
  "confluent/meta.proto": `syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
message Meta { string doc = 1; map<string, string> params = 2; repeated string tags = 3; }
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
`,
  "confluent/type/decimal.proto": `syntax = "proto3";
package confluent.type;
message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }
`,
  "google/type/calendar_period.proto": G(
    "enum CalendarPeriod { CALENDAR_PERIOD_UNSPECIFIED = 0; DAY = 1; WEEK = 2; FORTNIGHT = 3; MONTH = 4; QUARTER = 5; HALF = 6; YEAR = 7; }\n",
  ),
  "google/type/color.proto": G(
    "message Color { float red = 1; float green = 2; float blue = 3; google.protobuf.FloatValue alpha = 4; }\n",
    ["google/protobuf/wrappers.proto"],
  ),
  "google/type/date.proto": G("message Date { int32 year = 1; int32 month = 2; int32 day = 3; }\n"),
  "google/type/datetime.proto": G(
    "message DateTime { int32 year = 1; int32 month = 2; int32 day = 3; int32 hours = 4; int32 minutes = 5; int32 seconds = 6; int32 nanos = 7; oneof time_offset { google.protobuf.Duration utc_offset = 8; TimeZone time_zone = 9; } }\nmessage TimeZone { string id = 1; string version = 2; }\n",
    ["google/protobuf/duration.proto"],
  ),
  "google/type/dayofweek.proto": G(
    "enum DayOfWeek { DAY_OF_WEEK_UNSPECIFIED = 0; MONDAY = 1; TUESDAY = 2; WEDNESDAY = 3; THURSDAY = 4; FRIDAY = 5; SATURDAY = 6; SUNDAY = 7; }\n",
  ),
  "google/type/decimal.proto": G("message Decimal { string value = 1; }\n"),
  "google/type/expr.proto": G(
    "message Expr { string expression = 1; string title = 2; string description = 3; string location = 4; }\n",
  ),
  "google/type/fraction.proto": G("message Fraction { int64 numerator = 1; int64 denominator = 2; }\n"),
  "google/type/interval.proto": G(
    "message Interval { google.protobuf.Timestamp start_time = 1; google.protobuf.Timestamp end_time = 2; }\n",
    ["google/protobuf/timestamp.proto"],
  ),
  "google/type/latlng.proto": G("message LatLng { double latitude = 1; double longitude = 2; }\n"),
  "google/type/localized_text.proto": G(
    "message LocalizedText { string text = 1; string language_code = 2; }\n",
  ),
  "google/type/money.proto": G(
    "message Money { string currency_code = 1; int64 units = 2; int32 nanos = 3; }\n",
  ),
  "google/type/month.proto": G(
    "enum Month { MONTH_UNSPECIFIED = 0; JANUARY = 1; FEBRUARY = 2; MARCH = 3; APRIL = 4; MAY = 5; JUNE = 6; JULY = 7; AUGUST = 8; SEPTEMBER = 9; OCTOBER = 10; NOVEMBER = 11; DECEMBER = 12; }\n",
  ),
  "google/type/phone_number.proto": G(
    "message PhoneNumber { message ShortCode { string region_code = 1; string number = 2; } oneof kind { string e164_number = 1; ShortCode short_code = 2; } string extension = 3; }\n",
  ),
  "google/type/postal_address.proto": G(
    "message PostalAddress { int32 revision = 1; string region_code = 2; string language_code = 3; string postal_code = 4; string sorting_code = 5; string administrative_area = 6; string locality = 7; string sublocality = 8; repeated string address_lines = 9; repeated string recipients = 10; string organization = 11; }\n",
  ),
  "google/type/quaternion.proto": G(
    "message Quaternion { double x = 1; double y = 2; double z = 3; double w = 4; }\n",
  ),
  "google/type/timeofday.proto": G(
    "message TimeOfDay { int32 hours = 1; int32 minutes = 2; int32 seconds = 3; int32 nanos = 4; }\n",
  ),
};
