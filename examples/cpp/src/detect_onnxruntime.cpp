// ssd_detect_onnxruntime: an exported ONNX file (NMS in the graph) on ONNX Runtime's C++ API.
//
//     ssd_detect_onnxruntime model.onnx image.png [--out annotated.png] [--device cpu]
//
// The metadata (class names, input size, ...) is the file's metadata_props, which ONNX Runtime
// exposes as the session's custom metadata map. Pre- and post-processing are the shared ones
// in common/. Built when CMake finds ONNX Runtime's headers (ONNXRUNTIME_ROOT, see README.md).
#include <onnxruntime_cxx_api.h>

#include <memory>

#include "common/common.hpp"

namespace {

struct OrtModel {
    Ort::Env env{ORT_LOGGING_LEVEL_ERROR, "ssd_detect_onnxruntime"};
    std::unique_ptr<Ort::Session> session;
    std::string path;
};

std::string first_line(const std::exception& error) {
    std::string message = error.what();
    return message.substr(0, std::min(message.find('\n'), size_t(300)));
}

ssd::Metadata load(OrtModel& model, const ssd::Options& options) {
    model.path = options.model;
    if (options.device != "cpu" && options.device != "CPU") {
        throw ssd::Error(options.device, "this example runs ONNX Runtime on the CPU only. Note: use --device cpu");
    }
    Ort::SessionOptions session_options;
    session_options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);  // as the Python runtime's default
    try {
        model.session = std::make_unique<Ort::Session>(model.env, options.model.c_str(), session_options);
    } catch (const std::exception& error) {
        throw ssd::Error(options.model, "ONNX Runtime cannot load it (" + first_line(error) + "). Note: give an .onnx file from ssd-export");
    }
    Ort::AllocatorWithDefaultOptions allocator;
    Ort::ModelMetadata properties = model.session->GetModelMetadata();
    std::map<std::string, std::string> strings;
    for (const auto& key : properties.GetCustomMetadataMapKeysAllocated(allocator)) {
        Ort::AllocatedStringPtr value = properties.LookupCustomMetadataMapAllocated(key.get(), allocator);
        if (value) strings[key.get()] = value.get();
    }
    ssd::Metadata metadata = ssd::parse_metadata(strings, options.model);
    std::vector<std::string> outputs;
    for (size_t i = 0; i < model.session->GetOutputCount(); ++i) outputs.push_back(model.session->GetOutputNameAllocated(i, allocator).get());
    ssd::require_outputs(outputs, options.model);
    return metadata;
}

template <typename T>
std::vector<T> copy_output(const Ort::Value& value, ONNXTensorElementDataType type, size_t count, const std::string& name, const std::string& path) {
    Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
    if (info.GetElementType() != type || info.GetElementCount() < count) {
        throw ssd::Error(path, "output " + name + " has an unexpected type or size. Note: expected the layout of ssd-export's NMS outputs");
    }
    const T* data = value.GetTensorData<T>();
    return std::vector<T>(data, data + count);
}

ssd::RawDetections infer(OrtModel& model, const std::vector<float>& input, const ssd::Metadata& metadata) {
    const int64_t batch = int64_t(input.size()) / (3 * int64_t(metadata.input_height) * metadata.input_width);
    const int64_t shape[4] = {batch, 3, metadata.input_height, metadata.input_width};
    Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    Ort::Value images = Ort::Value::CreateTensor<float>(memory, const_cast<float*>(input.data()), input.size(), shape, 4);  // wraps, no copy
    const char* input_names[] = {"images"};
    std::vector<const char*> output_names;
    for (const auto& name : ssd::kOutputNames) output_names.push_back(name.c_str());
    std::vector<Ort::Value> outputs =
        model.session->Run(Ort::RunOptions{nullptr}, input_names, &images, 1, output_names.data(), output_names.size());

    size_t k = size_t(outputs[2].GetTensorTypeAndShapeInfo().GetShape().back());  // scores [N, K]: image 0's rows come first
    ssd::RawDetections raw;
    raw.num_detections = copy_output<int32_t>(outputs[0], ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, 1, "num_detections", model.path)[0];
    raw.boxes = copy_output<float>(outputs[1], ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, k * 4, "boxes", model.path);
    raw.scores = copy_output<float>(outputs[2], ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, k, "scores", model.path);
    raw.labels = copy_output<int32_t>(outputs[3], ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, k, "labels", model.path);
    return raw;
}

}  // namespace

int main(int argc, char** argv) {
    OrtModel model;
    ssd::Runtime runtime{
        [&](const ssd::Options& options) { return load(model, options); },
        [&](const std::vector<float>& input, const ssd::Metadata& metadata) { return infer(model, input, metadata); },
    };
    ssd::Program program{"ssd_detect_onnxruntime", "an .onnx file from ssd-export (with NMS)", "cpu", "cpu (this example uses the CPU provider)"};
    return ssd::run_program(argc, argv, program, runtime);
}
