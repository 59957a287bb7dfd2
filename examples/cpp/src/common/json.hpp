// JSON for the example programs, on nlohmann/json (the system's, or the copy in third_party/):
// reading the metadata an exported file carries, and writing the detections.
//
// Exported files describe themselves as a flat {key: JSON string} map (see
// ssd_deploy/export/metadata.py): class_names is a list of strings, input_size a list of
// numbers, nms a boolean, batch a number or "dynamic". Only common.cpp and json.cpp include
// this header, so the programs that include a runtime's headers do not also compile nlohmann's.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ssd::json {

using Value = nlohmann::json;

// Parse `text` as strict JSON (RFC 8259): no lone surrogates, leading zeros, raw control
// characters in strings, trailing text, or numbers beyond a double's range such as 1e999.
// Objects keep the last of duplicate keys. Throws std::invalid_argument with nlohmann's reason,
// on one line and without its "[json.exception...]" tag: "parse error at line 1, column 4: ...".
Value parse(std::string_view text);

// `text` as a quoted JSON string (UTF-8 passes through; control characters are escaped;
// bytes that are not UTF-8 become U+FFFD, so the output is always JSON).
std::string quote(std::string_view text);

// The shortest decimal that reads back as the same float (std::to_chars), as JSON. Not
// nlohmann's dump: it widens a float to double first and prints 0.1f as 0.10000000149011612.
std::string number(float value);

}  // namespace ssd::json
