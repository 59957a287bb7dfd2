#include "common.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "json.hpp"

namespace ssd {
namespace {

constexpr int kContractVersion = 1;  // ssd_deploy.export.metadata.CONTRACT_VERSION this code reads

std::string usage(const Program& program) {
    std::ostringstream out;
    out << "usage: " << program.name << " MODEL IMAGE [--out ANNOTATED] [--device DEVICE] [--score S] [--dump-input FILE]\n\n"
        << "Detect objects in IMAGE with an ssd-deploy export and print them as JSON (boxes xyxy in\n"
        << "IMAGE's pixels, scores, labels, class names from the file's metadata).\n\n"
        << "  MODEL             " << program.model_help << "\n"
        << "  IMAGE             " << supported_formats() << " image\n"
        << "  --out ANNOTATED   also write IMAGE with the boxes drawn (.png, .jpg or .ppm)\n"
        << "  --device DEVICE   " << program.device_help << " (default " << program.default_device << ")\n"
        << "  --score S         report only detections scoring above S (default: the model's own threshold)\n"
        << "  --dump-input FILE write the network input (float32 [N, 3, H, W], raw) to FILE, for checks\n"
        << "  -h, --help        this text\n\n"
        << "Exit code 0; 1 for an unreadable image; 2 for a bad model or command line.\n"
        << "Resize method opencv: " << opencv_resize_implementation() << "; torchvision: built-in port of PyTorch's bilinear.\n";
    return out.str();
}

Options parse_args(int argc, char** argv, const Program& program) {
    Options options;
    options.device = program.default_device;
    std::vector<std::string> positional;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << usage(program);
            std::exit(0);
        }
        std::string* target = arg == "--out" ? &options.out : arg == "--device" ? &options.device : arg == "--dump-input" ? &options.dump_input : nullptr;
        if (arg == "--score") {
            if (i + 1 >= argc) throw Error(program.name, "--score needs a value. Note: see --help");
            char* end = nullptr;
            options.min_score = std::strtof(argv[++i], &end);
            if (end == argv[i] || *end != '\0' || !std::isfinite(*options.min_score)) {
                throw Error(program.name, std::string("--score ") + argv[i] + " is not a number. Note: e.g. --score 0.5");
            }
        } else if (target) {
            if (i + 1 >= argc) throw Error(program.name, arg + " needs a value. Note: see --help");
            *target = argv[++i];
        } else if (arg.size() > 1 && arg[0] == '-') {
            throw Error(program.name, "unknown option " + arg + ". Note: see --help");
        } else {
            positional.push_back(arg);
        }
    }
    if (positional.size() != 2) {
        throw Error(program.name, "expected MODEL and IMAGE, got " + std::to_string(positional.size()) + " arguments. Note: see --help");
    }
    options.model = positional[0];
    options.image = positional[1];
    return options;
}

// `key`'s value, which must pass `check` (e.g. &json::Value::is_number).
using Check = bool (json::Value::*)() const noexcept;
const json::Value& field(const std::map<std::string, json::Value>& values, const std::string& key, Check check, const std::string& source) {
    auto it = values.find(key);
    if (it == values.end()) throw Error(source, "malformed ssd-deploy metadata (no '" + key + "'). Note: export it with ssd-export");
    if (!(it->second.*check)()) throw Error(source, "malformed ssd-deploy metadata ('" + key + "' has the wrong type)");
    return it->second;
}

void write_raw(const std::string& path, const std::vector<float>& values) {
    std::ofstream file(path, std::ios::binary);
    file.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
    if (!file) throw Error(path, "cannot write the network input dump");
}

}  // namespace

const std::vector<std::string> kOutputNames = {"num_detections", "boxes", "scores", "labels"};

Metadata parse_metadata(const std::map<std::string, std::string>& strings, const std::string& source) {
    if (!strings.count("contract_version")) {
        throw Error(source, "no ssd-deploy metadata in this file. Note: export it with ssd-export");
    }
    std::map<std::string, json::Value> values;
    for (const auto& [key, text] : strings) {
        try {
            values[key] = json::parse(text);
        } catch (const std::invalid_argument& error) {
            if (key.rfind("AOTI_", 0) == 0) continue;  // not ours (AOTInductor's own entries)
            throw Error(source, "malformed ssd-deploy metadata ('" + key + "' is not JSON: " + error.what() + "). Note: re-export it with ssd-export");
        }
    }
    int version = field(values, "contract_version", &json::Value::is_number, source).get<int>();
    if (version > kContractVersion) {
        throw Error(source, "exported with contract version " + std::to_string(version) + "; this program reads up to " +
                                std::to_string(kContractVersion) + ". Note: rebuild it from a newer ssd-deploy");
    }
    Metadata metadata;
    for (const auto& name : field(values, "class_names", &json::Value::is_array, source)) {
        if (!name.is_string()) throw Error(source, "malformed ssd-deploy metadata (a class name is not a string)");
        metadata.class_names.push_back(name.get<std::string>());
    }
    const auto& size = field(values, "input_size", &json::Value::is_array, source);
    if (size.size() != 2 || !size[0].is_number() || !size[1].is_number() || size[0].get<double>() < 1 || size[1].get<double>() < 1) {
        throw Error(source, "malformed ssd-deploy metadata (input_size is not [height, width])");
    }
    metadata.input_height = int(size[0].get<double>());
    metadata.input_width = int(size[1].get<double>());
    metadata.nms = field(values, "nms", &json::Value::is_boolean, source).get<bool>();
    metadata.precision = field(values, "precision", &json::Value::is_string, source).get<std::string>();
    metadata.score_threshold = float(field(values, "score_threshold", &json::Value::is_number, source).get<double>());
    auto resize = values.find("resize");  // absent in files written before the method was recorded
    if (resize != values.end()) {
        std::string method = resize->second.is_string() ? resize->second.get<std::string>() : resize->second.dump();
        if (method != "opencv" && method != "torchvision") {
            throw Error(source, "resize method '" + method + "' is unknown to this program. Note: it knows opencv, torchvision");
        }
        metadata.resize = method;
    }
    auto batch = values.find("batch");
    if (batch != values.end() && batch->second.is_number()) metadata.batch = std::max(1, int(batch->second.get<double>()));
    if (!metadata.nms) {
        throw Error(source, "exported without NMS (--no-nms): its outputs are decoded priors, not detections. "
                            "Note: these programs read files exported with NMS in the graph (ssd-export without --no-nms)");
    }
    return metadata;
}

std::map<std::string, std::string> parse_metadata_json(const std::string& text, const std::string& source) {
    json::Value object;
    try {
        object = json::parse(text);
    } catch (const std::invalid_argument& error) {
        throw Error(source, std::string("metadata.json is not JSON (") + error.what() + "). Note: re-export it with ssd-export");
    }
    std::map<std::string, std::string> strings;
    if (!object.is_object()) return strings;  // parse_metadata then says it is no ssd-deploy metadata
    for (const auto& [key, value] : object.items()) {
        if (value.is_string()) strings[key] = value.get<std::string>();
    }
    return strings;
}

void require_outputs(const std::vector<std::string>& present, const std::string& source) {
    std::string missing, have;
    for (const auto& name : kOutputNames) {
        if (std::find(present.begin(), present.end(), name) == present.end()) missing += (missing.empty() ? "" : ", ") + name;
    }
    if (missing.empty()) return;
    for (const auto& name : present) have += (have.empty() ? "" : ", ") + name;
    throw Error(source, "the model has no output " + missing + " (its outputs: " + (have.empty() ? "none" : have) +
                            "). Note: expected num_detections, boxes, scores, labels, as ssd-export writes with NMS");
}

std::vector<Detection> to_detections(const RawDetections& raw, int width, int height, const Metadata& metadata, const std::string& source) {
    int64_t capacity = int64_t(raw.scores.size());
    if (raw.num_detections < 0 || raw.num_detections > capacity || raw.boxes.size() != size_t(capacity) * 4 || raw.labels.size() != size_t(capacity)) {
        throw Error(source, "outputs of unexpected shape (num_detections " + std::to_string(raw.num_detections) + ", " +
                                std::to_string(capacity) + " rows). Note: expected the layout of ssd-export's NMS outputs");
    }
    // float32 products, as Python's boxes (float32) * [w, h, w, h] (float32)
    const float scale[4] = {float(width), float(height), float(width), float(height)};
    std::vector<Detection> detections(size_t(raw.num_detections));
    for (size_t i = 0; i < detections.size(); ++i) {
        Detection& d = detections[i];
        d.label = raw.labels[i];
        d.score = raw.scores[i];
        for (int k = 0; k < 4; ++k) d.box[k] = raw.boxes[i * 4 + k] * scale[k];
        d.class_name = d.label >= 0 && size_t(d.label) < metadata.class_names.size() ? metadata.class_names[size_t(d.label)]
                                                                                      : "class_" + std::to_string(d.label);
    }
    return detections;
}

std::string detections_json(const std::string& image_path, const Image& image, const std::vector<Detection>& detections) {
    std::ostringstream out;
    out << "{\"image\": " << json::quote(image_path) << ", \"width\": " << image.width << ", \"height\": " << image.height
        << ", \"detections\": [";
    for (size_t i = 0; i < detections.size(); ++i) {
        const Detection& d = detections[i];
        out << (i ? ",\n  " : "\n  ") << "{\"box_xyxy\": [" << json::number(d.box[0]) << ", " << json::number(d.box[1]) << ", "
            << json::number(d.box[2]) << ", " << json::number(d.box[3]) << "], \"score\": " << json::number(d.score)
            << ", \"label\": " << d.label << ", \"class_name\": " << json::quote(d.class_name) << "}";
    }
    out << (detections.empty() ? "]}" : "\n]}");
    return out.str();
}

void draw_detections(Image& image, const std::vector<Detection>& detections) {
    // ssd_deploy.draw: thickness from the image size, golden-ratio hues per class, black text on
    // a filled label box (here in a built-in bitmap font instead of OpenCV's Hershey font).
    int thickness = std::max(1, int(std::nearbyint(std::min(image.width, image.height) / 300.0)));
    for (const Detection& d : detections) {
        double h = std::fmod(d.label * 0.618034, 1.0) * 6.0, s = 0.85;
        int sector = int(h);
        double f = h - sector, p = 1 - s, q = 1 - s * f, t = 1 - s * (1 - f);
        double rgb[6][3] = {{1, t, p}, {q, 1, p}, {p, 1, t}, {p, q, 1}, {t, p, 1}, {1, p, q}};
        const double* c = rgb[sector % 6];
        const uint8_t color[3] = {uint8_t(c[2] * 255), uint8_t(c[1] * 255), uint8_t(c[0] * 255)};
        const uint8_t black[3] = {0, 0, 0};
        int x1 = int(std::nearbyint(d.box[0])), y1 = int(std::nearbyint(d.box[1]));
        int x2 = int(std::nearbyint(d.box[2])), y2 = int(std::nearbyint(d.box[3]));
        draw_rectangle(image, x1, y1, x2, y2, color, thickness);
        char score[16];
        std::snprintf(score, sizeof score, " %.2f", d.score);
        std::string text = d.class_name + score;
        int tw = text_width(text, thickness) + 2, th = text_height(thickness) + 2;
        int top = std::max(y1, th);
        draw_rectangle(image, x1, top - th, x1 + tw, top, color, 1, true);
        draw_text(image, x1 + 1, top - th + 1, text, black, thickness);
    }
}

int run_program(int argc, char** argv, const Program& program, const Runtime& runtime) {
    try {
        Options options = parse_args(argc, argv, program);
        if (!std::filesystem::exists(options.model)) throw Error(options.model, "no such file. Note: give the path of a file from ssd-export");
        if (!std::filesystem::is_regular_file(options.model)) throw Error(options.model, "not a file. Note: give the path of a file from ssd-export");
        Image image = read_image(options.image);
        Metadata metadata = runtime.load(options);

        // One image; a fixed-batch file gets the rest of its batch as blank images, as in Python.
        size_t plane = size_t(3) * metadata.input_height * metadata.input_width;
        std::vector<float> input(plane * metadata.batch, 0.0f);
        preprocess(image, metadata.input_width, metadata.input_height, metadata.resize, input.data());
        if (!options.dump_input.empty()) write_raw(options.dump_input, input);

        if (options.min_score && *options.min_score < metadata.score_threshold) {
            throw Error(options.model, "score threshold " + json::number(*options.min_score) + " is below the " + json::number(metadata.score_threshold) +
                                           " built into the model. Note: detections under it were dropped inside the model; re-export with a lower --score");
        }
        RawDetections raw = runtime.infer(input, metadata);
        std::vector<Detection> detections = to_detections(raw, image.width, image.height, metadata, options.model);
        if (options.min_score) {  // strictly above, as Detections.above in Python
            std::erase_if(detections, [&](const Detection& d) { return !(d.score > *options.min_score); });
        }
        std::cout << detections_json(options.image, image, detections) << std::endl;
        if (!options.out.empty()) {
            draw_detections(image, detections);
            write_image(options.out, image);
        }
        return 0;
    } catch (const Error& error) {
        std::cerr << "error: " << error.what() << std::endl;
        return error.exit_code();
    } catch (const std::exception& error) {  // a runtime's own exception: name the program, keep its first line
        std::string message = error.what();
        std::cerr << "error: " << program.name << ": " << message.substr(0, message.find('\n')) << std::endl;
        return kExitModel;
    }
}

}  // namespace ssd
