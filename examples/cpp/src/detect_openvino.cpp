// ssd_detect_openvino: an exported ONNX file (NMS in the graph) on OpenVINO's C++ API.
//
//     ssd_detect_openvino model.onnx image.png [--out annotated.png] [--device CPU]
//
// OpenVINO reads the ONNX file as exported and keeps its metadata_props in the model's
// rt_info["framework"] (also in an IR converted with ovc), which is where the class names and
// input size come from. Pre- and post-processing are the shared ones in common/.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <openvino/frontend/manager.hpp>
#include <openvino/openvino.hpp>

#include "common/common.hpp"

namespace {

struct OpenVINOModel {
    ov::Core core;
    ov::CompiledModel compiled;
    ov::InferRequest request;
    std::string path;
};

// OpenVINO's messages are a stack of "Exception from <file>:<line>:" / "Check '...' failed at"
// lines; the last line says what happened.
std::string last_line(const std::exception& error) {
    std::string message = error.what();
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    size_t start = message.rfind('\n');
    std::string line = start == std::string::npos ? message : message.substr(start + 1);
    return line.substr(0, 300);
}

std::string lower_suffix(const std::string& path) {
    std::string suffix = std::filesystem::path(path).extension().string();
    std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return suffix;
}

ssd::Metadata load(OpenVINOModel& model, const ssd::Options& options) {
    model.path = options.model;
    std::string device = options.device;  // OpenVINO's names are capitals; accept "cpu" too
    std::transform(device.begin(), device.end(), device.begin(), [](unsigned char c) { return char(std::toupper(c)); });
    std::string suffix = lower_suffix(options.model);
    if (suffix != ".onnx" && suffix != ".xml") {
        throw ssd::Error(options.model, "OpenVINO reads .onnx files and IR .xml files. Note: give an .onnx file from ssd-export or an IR converted from one");
    }
    std::shared_ptr<ov::Model> network;
    try {
        if (suffix == ".onnx") {  // the ONNX front end by name: Core::read_model would also try the others on a bad file, noisily
            ov::frontend::FrontEndManager manager;
            ov::frontend::FrontEnd::Ptr onnx = manager.load_by_framework("onnx");
            network = onnx->convert(onnx->load(options.model));
        } else {
            network = model.core.read_model(options.model);
        }
    } catch (const std::exception& error) {
        throw ssd::Error(options.model, "OpenVINO cannot read it (" + last_line(error) + "). Note: give an .onnx file from ssd-export or an IR .xml converted from one");
    }
    std::map<std::string, std::string> strings;
    if (network->has_rt_info("framework")) {
        for (const auto& [key, value] : network->get_rt_info<ov::AnyMap>("framework")) strings[key] = value.as<std::string>();
    }
    ssd::Metadata metadata = ssd::parse_metadata(strings, options.model);
    std::vector<std::string> outputs;
    for (const auto& output : network->outputs()) {
        for (const auto& name : output.get_names()) outputs.push_back(name);
    }
    ssd::require_outputs(outputs, options.model);

    // As the Python runtime: pin the file's precision, since OpenVINO otherwise computes in
    // bf16 on CPUs that have it (an int8 file runs its quantised layers in int8 either way).
    ov::element::Type precision = metadata.precision == "fp16" ? ov::element::f16 : metadata.precision == "bf16" ? ov::element::bf16 : ov::element::f32;
    try {
        model.compiled = model.core.compile_model(network, device, ov::hint::performance_mode(ov::hint::PerformanceMode::LATENCY),
                                                  ov::hint::inference_precision(precision));
        model.request = model.compiled.create_infer_request();
    } catch (const std::exception& error) {
        std::string devices;
        for (const auto& name : model.core.get_available_devices()) devices += (devices.empty() ? "" : ", ") + name;
        throw ssd::Error(options.model, "cannot compile it for device " + device + " (" + last_line(error) + "). Note: OpenVINO sees " + devices);
    }
    return metadata;
}

template <typename T>
std::vector<T> copy_output(ov::InferRequest& request, const std::string& name, size_t count, const std::string& path) {
    ov::Tensor tensor = request.get_tensor(name);
    if (tensor.get_element_type() != ov::element::from<T>() || tensor.get_size() < count) {
        throw ssd::Error(path, "output " + name + " is " + tensor.get_element_type().get_type_name() + " " + tensor.get_shape().to_string() +
                                   ". Note: expected the layout of ssd-export's NMS outputs");
    }
    const T* data = tensor.data<const T>();
    return std::vector<T>(data, data + count);
}

ssd::RawDetections infer(OpenVINOModel& model, const std::vector<float>& input, const ssd::Metadata& metadata) {
    ov::Shape shape{input.size() / (3 * size_t(metadata.input_height) * metadata.input_width), 3, size_t(metadata.input_height),
                    size_t(metadata.input_width)};
    ov::Tensor images(ov::element::f32, shape, const_cast<float*>(input.data()));  // wraps, no copy
    model.request.set_tensor("images", images);
    model.request.infer();
    size_t k = model.request.get_tensor("scores").get_shape().back();  // K, the padded detections per image
    ssd::RawDetections raw;
    raw.num_detections = copy_output<int32_t>(model.request, "num_detections", 1, model.path)[0];
    raw.boxes = copy_output<float>(model.request, "boxes", k * 4, model.path);  // image 0's rows come first
    raw.scores = copy_output<float>(model.request, "scores", k, model.path);
    raw.labels = copy_output<int32_t>(model.request, "labels", k, model.path);
    return raw;
}

}  // namespace

int main(int argc, char** argv) {
    OpenVINOModel model;
    ssd::Runtime runtime{
        [&](const ssd::Options& options) { return load(model, options); },
        [&](const std::vector<float>& input, const ssd::Metadata& metadata) { return infer(model, input, metadata); },
    };
    ssd::Program program{"ssd_detect_openvino", "an .onnx file from ssd-export (with NMS), or an OpenVINO IR .xml converted from one",
                         "CPU", "an OpenVINO device: CPU, GPU, NPU, AUTO"};
    return ssd::run_program(argc, argv, program, runtime);
}
