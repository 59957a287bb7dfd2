// What the three example programs share: command line, errors, the file's metadata, turning
// the padded outputs into detections, JSON output and the annotated picture.
//
//     image file -> read_image -> preprocess -> [1, 3, H, W] float32 RGB in [0, 1]
//         -> the runtime runs the exported graph (the only part each program writes itself)
//         -> num_detections [N], boxes [N, K, 4] xyxy in [0, 1], scores [N, K], labels [N, K]
//         -> to_detections: first num_detections rows, boxes times the original size -> JSON
//
// The same steps as ssd_deploy.pipeline in Python, so the detections agree with the Python
// runtimes' (the test suite checks: boxes within 1 pixel, scores within 1e-4).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "image.hpp"

namespace ssd {

// Exit codes, as ssd-detect's: a bad image 1, a bad model or command line 2.
constexpr int kExitImage = 1;
constexpr int kExitModel = 2;

// An error a user can cause. The message has one shape: "<where>: <what happened>. Note: <what to do>".
class Error : public std::runtime_error {
public:
    Error(const std::string& where, const std::string& problem, int exit_code = kExitModel)
        : std::runtime_error(where + ": " + problem), exit_code_(exit_code) {}
    int exit_code() const { return exit_code_; }

private:
    int exit_code_;
};

// The command line: PROGRAM MODEL IMAGE [--out annotated.png] [--device D] [--score S] [--dump-input FILE].
struct Options {
    std::string model;
    std::string image;
    std::string out;         // annotated picture to write ("" = none)
    std::string device;      // the runtime's device name
    std::optional<float> min_score;  // report only detections scoring above this (>= the model's threshold)
    std::string dump_input;  // write the network input (float32 [1, 3, H, W], raw little-endian) here
};

// What each program tells the shared main about itself.
struct Program {
    std::string name;            // e.g. "ssd_detect_openvino"
    std::string model_help;      // which files MODEL may be
    std::string default_device;  // e.g. "CPU"
    std::string device_help;     // which devices there are
};

// The metadata an exported file carries (ssd_deploy/export/metadata.py), as far as these programs need it.
struct Metadata {
    std::vector<std::string> class_names;  // by label, background at 0
    int input_height = 0;
    int input_width = 0;
    bool nms = false;
    int batch = 1;  // the fixed batch size, or 1 when the batch dimension is dynamic
    std::string precision;  // fp32, fp16, bf16 or int8
    float score_threshold = 0.0f;
    std::string resize = "opencv";  // how images are resized to the input: "opencv" or "torchvision"
};

// Parse the {key: JSON string} map. Throws Error naming `source` when it is not an
// ssd-deploy export, is malformed, newer than this program, or was exported without NMS.
Metadata parse_metadata(const std::map<std::string, std::string>& strings, const std::string& source);

// The {key: JSON string} map of a TorchScript file's metadata.json (the same map as ONNX's
// metadata_props): its string values by key. Throws Error naming `source` when it is not JSON.
std::map<std::string, std::string> parse_metadata_json(const std::string& text, const std::string& source);

// The outputs the programs read, with NMS in the graph: ssd_deploy.export.metadata.NMS_OUTPUTS.
extern const std::vector<std::string> kOutputNames;

// Throw Error unless every name in kOutputNames is in `present` (a file exported with
// --no-nms, or some other model, lacks them).
void require_outputs(const std::vector<std::string>& present, const std::string& source);

// The padded outputs for the first image of the batch, as float32/int32 host arrays.
struct RawDetections {
    int64_t num_detections = 0;
    std::vector<float> boxes;     // [K, 4] xyxy in [0, 1]
    std::vector<float> scores;    // [K]
    std::vector<int32_t> labels;  // [K]
};

struct Detection {
    int label = 0;
    std::string class_name;
    float score = 0.0f;
    float box[4] = {0, 0, 0, 0};  // xyxy in the original image's pixels
};

// ssd_deploy.pipeline.to_detections: the first num_detections rows, boxes scaled to the
// original `width` x `height` (float32 arithmetic, no clipping, as in Python).
std::vector<Detection> to_detections(const RawDetections& raw, int width, int height, const Metadata& metadata, const std::string& source);

// {"image": ..., "width": ..., "height": ..., "detections": [{"box_xyxy": [...], "score": ...,
// "label": ..., "class_name": ...}]}: the record ssd-detect writes to <name>.json.
std::string detections_json(const std::string& image_path, const Image& image, const std::vector<Detection>& detections);

// ssd_deploy.draw.draw_detections: box, class name and score in the class's colour.
void draw_detections(Image& image, const std::vector<Detection>& detections);

// The part each program writes: loading the model with its runtime, and running it.
struct Runtime {
    // Load the model named by options.model on options.device; return its metadata.
    std::function<Metadata(const Options&)> load;
    // Run the network on `input` (float32 [batch, 3, H, W]); return image 0's padded detections.
    std::function<RawDetections(const std::vector<float>& input, const Metadata&)> infer;
};

// The whole program around a Runtime: parse the arguments, load the model, read and
// pre-process the image, infer, print the JSON to stdout, write the annotated picture.
// Returns the exit code: 0, or kExitImage / kExitModel after one "error: ..." line on stderr.
int run_program(int argc, char** argv, const Program& program, const Runtime& runtime);

}  // namespace ssd
