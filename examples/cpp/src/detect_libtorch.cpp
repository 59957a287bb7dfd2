// ssd_detect_libtorch: an exported TorchScript file (.ts) on LibTorch.
//
//     ssd_detect_libtorch model.ts image.png [--out annotated.png] [--device cpu]
//
// The file holds the traced network with scripted decoding and NMS in plain tensor code, so it
// loads without torchvision's operators; its metadata is the extra file metadata.json, read by
// torch::jit::load. Pre- and post-processing are the shared ones in common/.
#include <algorithm>

#include <torch/cuda.h>
#include <torch/script.h>

#include "common/common.hpp"

namespace {

struct TorchModel {
    torch::jit::Module module;
    torch::Device device = torch::kCPU;
    std::string path;
};

// The first sentence of a torch error (they go on with advice and a C++ backtrace).
std::string first_sentence(const std::exception& error) {
    std::string message = error.what();
    return message.substr(0, std::min({message.find('\n'), message.find(". "), size_t(300)}));
}

ssd::Metadata load(TorchModel& model, const ssd::Options& options) {
    model.path = options.model;
    try {
        model.device = torch::Device(options.device);
    } catch (const std::exception&) {
        throw ssd::Error(options.device, "not a torch device. Note: use cpu, cuda or cuda:N");
    }
    if (model.device.is_cuda() && !torch::cuda::is_available()) {
        throw ssd::Error(options.device, "CUDA is not available here. Note: use --device cpu");
    }
    torch::jit::ExtraFilesMap extra_files{{"metadata.json", ""}};
    try {
        model.module = torch::jit::load(options.model, model.device, extra_files);
    } catch (const std::exception& error) {
        throw ssd::Error(options.model, "not a loadable TorchScript file (" + first_sentence(error) + "). Note: give a .ts file from ssd-export --format torchscript");
    }
    model.module.eval();

    // metadata.json is a JSON object of {key: JSON string}, the same map as ONNX's metadata_props
    std::map<std::string, std::string> strings;
    const std::string& text = extra_files["metadata.json"];
    if (!text.empty()) strings = ssd::parse_metadata_json(text, options.model);
    return ssd::parse_metadata(strings, options.model);
}

ssd::RawDetections infer(TorchModel& model, const std::vector<float>& input, const ssd::Metadata& metadata) {
    c10::InferenceMode guard;
    int64_t batch = int64_t(input.size()) / (3 * int64_t(metadata.input_height) * metadata.input_width);
    torch::Tensor images = torch::from_blob(const_cast<float*>(input.data()), {batch, 3, metadata.input_height, metadata.input_width}, torch::kFloat32)
                               .to(model.device);
    torch::jit::IValue result = model.module.forward({images});
    // the outputs, in the order of ssd::kOutputNames: num_detections, boxes, scores, labels
    if (!result.isTuple() || result.toTupleRef().elements().size() != ssd::kOutputNames.size()) {
        throw ssd::Error(model.path, "the model does not return the 4 outputs num_detections, boxes, scores, labels. Note: export it with ssd-export --format torchscript");
    }
    const auto& outputs = result.toTupleRef().elements();
    std::vector<torch::Tensor> tensors;
    for (const auto& output : outputs) {
        if (!output.isTensor()) throw ssd::Error(model.path, "an output is not a tensor. Note: export it with ssd-export --format torchscript");
        tensors.push_back(output.toTensor().select(0, 0).to(torch::kCPU).contiguous());  // image 0
    }
    torch::Tensor num = tensors[0].to(torch::kInt64), boxes = tensors[1].to(torch::kFloat32);
    torch::Tensor scores = tensors[2].to(torch::kFloat32), labels = tensors[3].to(torch::kInt32);
    if (num.dim() != 0 || boxes.dim() != 2 || boxes.size(1) != 4 || scores.dim() != 1 || labels.sizes() != scores.sizes() || boxes.size(0) != scores.size(0)) {
        throw ssd::Error(model.path, "outputs of unexpected shape. Note: expected num_detections [N], boxes [N, K, 4], scores and labels [N, K]");
    }
    ssd::RawDetections raw;
    raw.num_detections = num.item<int64_t>();
    raw.boxes.assign(boxes.data_ptr<float>(), boxes.data_ptr<float>() + boxes.numel());
    raw.scores.assign(scores.data_ptr<float>(), scores.data_ptr<float>() + scores.numel());
    raw.labels.assign(labels.data_ptr<int32_t>(), labels.data_ptr<int32_t>() + labels.numel());
    return raw;
}

}  // namespace

int main(int argc, char** argv) {
    TorchModel model;
    ssd::Runtime runtime{
        [&](const ssd::Options& options) { return load(model, options); },
        [&](const std::vector<float>& input, const ssd::Metadata& metadata) { return infer(model, input, metadata); },
    };
    ssd::Program program{"ssd_detect_libtorch", "a TorchScript file from ssd-export --format torchscript (.ts)", "cpu",
                         "a torch device: cpu, cuda, cuda:N"};
    return ssd::run_program(argc, argv, program, runtime);
}
