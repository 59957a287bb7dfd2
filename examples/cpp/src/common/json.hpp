// A minimal JSON reader and writer: just what the ssd-deploy metadata needs.
//
// Exported files describe themselves as a flat {key: JSON string} map (see
// ssd_deploy/export/metadata.py): class_names is a list of strings, input_size a list of
// numbers, nms a boolean, batch a number or "dynamic". Neither the OpenVINO nor the torch
// wheel ships a JSON library's headers, and vendoring one would be larger than this file.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace ssd::json {

// One JSON value. Objects keep their keys sorted (std::map); duplicates keep the last value.
struct Value {
    enum class Type { Null, Bool, Number, String, Array, Object };
    Type type = Type::Null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<Value> array;
    std::map<std::string, Value> object;
};

// Parse `text`; throws std::invalid_argument("<why> at offset <i>") when it is not JSON.
Value parse(std::string_view text);

// `text` as a quoted JSON string (UTF-8 passes through; control characters are escaped).
std::string quote(std::string_view text);

// The shortest decimal that reads back as the same float (std::to_chars), as JSON.
std::string number(float value);

}  // namespace ssd::json
