#include "json.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace ssd::json {
namespace {

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    Value document() {
        Value value = parse_value(0);
        skip_space();
        if (pos_ != text_.size()) fail("trailing characters");
        return value;
    }

private:
    static constexpr int kMaxDepth = 64;  // metadata nests 3 levels; refuse pathological input
    std::string_view text_;
    size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& why) const {
        throw std::invalid_argument(why + " at offset " + std::to_string(pos_));
    }

    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t')) ++pos_;
    }

    bool consume(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    Value parse_value(int depth) {
        if (depth > kMaxDepth) fail("nested too deeply");
        skip_space();
        if (pos_ >= text_.size()) fail("unexpected end");
        Value value;
        char c = text_[pos_];
        if (c == '{') {
            value.type = Value::Type::Object;
            ++pos_;
            skip_space();
            if (consume("}")) return value;
            while (true) {
                skip_space();
                if (pos_ >= text_.size() || text_[pos_] != '"') fail("expected a key");
                std::string key = parse_string();
                skip_space();
                if (!consume(":")) fail("expected ':'");
                value.object[key] = parse_value(depth + 1);
                skip_space();
                if (consume("}")) return value;
                if (!consume(",")) fail("expected ',' or '}'");
            }
        }
        if (c == '[') {
            value.type = Value::Type::Array;
            ++pos_;
            skip_space();
            if (consume("]")) return value;
            while (true) {
                value.array.push_back(parse_value(depth + 1));
                skip_space();
                if (consume("]")) return value;
                if (!consume(",")) fail("expected ',' or ']'");
            }
        }
        if (c == '"') {
            value.type = Value::Type::String;
            value.string = parse_string();
            return value;
        }
        if (consume("true") || consume("false")) {
            value.type = Value::Type::Bool;
            value.boolean = text_[pos_ - 1] == 'e' && text_[pos_ - 4] == 't';
            return value;
        }
        if (consume("null")) return value;
        if (c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I') {  // Python's json writes NaN/Infinity
            value.type = Value::Type::Number;
            if (consume("NaN")) value.number = std::nan("");
            else if (consume("Infinity")) value.number = HUGE_VAL;
            else if (consume("-Infinity")) value.number = -HUGE_VAL;
            else value.number = parse_number();
            return value;
        }
        fail(std::string("unexpected character '") + c + "'");
    }

    double parse_number() {
        size_t start = pos_;
        while (pos_ < text_.size() && std::string_view("+-0123456789.eE").find(text_[pos_]) != std::string_view::npos) ++pos_;
        std::string digits(text_.substr(start, pos_ - start));
        char* end = nullptr;
        double number = std::strtod(digits.c_str(), &end);
        if (digits.empty() || end != digits.c_str() + digits.size()) fail("malformed number");
        return number;
    }

    unsigned hex4() {
        if (pos_ + 4 > text_.size()) fail("short \\u escape");
        unsigned code = 0;
        for (int i = 0; i < 4; ++i) {
            char h = text_[pos_++];
            code <<= 4;
            if (h >= '0' && h <= '9') code |= h - '0';
            else if (h >= 'a' && h <= 'f') code |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F') code |= h - 'A' + 10;
            else fail("bad \\u escape");
        }
        return code;
    }

    static void append_utf8(std::string& out, unsigned code) {
        if (code < 0x80) {
            out += char(code);
        } else if (code < 0x800) {
            out += char(0xC0 | (code >> 6));
            out += char(0x80 | (code & 0x3F));
        } else if (code < 0x10000) {
            out += char(0xE0 | (code >> 12));
            out += char(0x80 | ((code >> 6) & 0x3F));
            out += char(0x80 | (code & 0x3F));
        } else {
            out += char(0xF0 | (code >> 18));
            out += char(0x80 | ((code >> 12) & 0x3F));
            out += char(0x80 | ((code >> 6) & 0x3F));
            out += char(0x80 | (code & 0x3F));
        }
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string out;
        while (true) {
            if (pos_ >= text_.size()) fail("unterminated string");
            char c = text_[pos_++];
            if (c == '"') return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= text_.size()) fail("unterminated escape");
            char e = text_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {  // Python's json.dumps escapes every non-ASCII character this way
                    unsigned code = hex4();
                    if (code >= 0xD800 && code < 0xDC00 && consume("\\u")) {  // surrogate pair
                        unsigned low = hex4();
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    }
                    append_utf8(out, code);
                    break;
                }
                default: fail("bad escape");
            }
        }
    }
};

}  // namespace

Value parse(std::string_view text) { return Parser(text).document(); }

std::string quote(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buffer[8];
                    std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
                    out += buffer;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string number(float value) {
    if (!std::isfinite(value)) return "null";  // JSON has no NaN or infinity
    char buffer[32];
    auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
}

}  // namespace ssd::json
