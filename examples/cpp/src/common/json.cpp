#include "json.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace ssd::json {

Value parse(std::string_view text) {
    try {
        return Value::parse(text.begin(), text.end());
    } catch (const Value::exception& error) {
        // nlohmann's what() is "[json.exception.parse_error.101] parse error at ...": keep the
        // reason; its "last read" excerpt already shows control characters as <U+0009>.
        std::string reason = error.what();
        if (reason.rfind("[json.exception.", 0) == 0 && reason.find("] ") != std::string::npos) {
            reason.erase(0, reason.find("] ") + 2);
        }
        for (char& c : reason) {
            if (c == '\n' || c == '\r') c = ' ';  // the error is one line
        }
        throw std::invalid_argument(reason);
    }
}

std::string quote(std::string_view text) {
    return Value(std::string(text)).dump(-1, ' ', false, Value::error_handler_t::replace);
}

std::string number(float value) {
    if (!std::isfinite(value)) return "null";  // JSON has no NaN or infinity
    char buffer[32];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
}

}  // namespace ssd::json
