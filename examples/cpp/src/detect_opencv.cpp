// ssd_detect_opencv: an exported ONNX file (NMS in the graph) on OpenCV's DNN module (OpenCV 5).
//
//     ssd_detect_opencv model.onnx image.png [--out annotated.png] [--device cpu]
//
// OpenCV 5's DNN module runs the file as exported, NonMaxSuppression included (OpenCV 4.x has no
// NonMaxSuppression layer, and 4.6's importer reads none of our files). SSDLite-MobileNetV3 files
// must be exported with `ssd-export --opencv-dnn` (see ssd_deploy/export/opencv_dnn.py).
// cv::dnn::Net does not expose the file's metadata_props or output names, so they are read from
// the ONNX protobuf here (read_onnx_header). Pre- and post-processing are the shared ones in common/.
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <fstream>

#include "common/common.hpp"

namespace {

struct OpenCVModel {
    cv::dnn::Net net;
    std::string path;
};

// --- the ONNX file's metadata_props and graph output names ---------------------------------------
// Reading them takes the protobuf wire format of two ModelProto fields (onnx.proto: metadata_props
// = 14, key = 1, value = 2; graph = 7, its output = 12, a ValueInfoProto's name = 1). A protobuf
// library would need onnx.proto compiled in; OpenCV links its own copy but keeps it private. Every
// other field, the weights included, is skipped by seeking past it, so a large file is not read.

struct OnnxHeader {
    std::map<std::string, std::string> metadata;
    std::vector<std::string> outputs;
};

class WireReader {
public:
    WireReader(std::ifstream& in, const std::string& path) : in_(in), path_(path) {}

    uint64_t varint() {
        uint64_t value = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            int byte = in_.get();
            if (byte == EOF) fail();
            value |= uint64_t(byte & 0x7f) << shift;
            if (!(byte & 0x80)) return value;
        }
        fail();
    }

    std::string bytes(uint64_t size) {
        if (size > (uint64_t(1) << 30)) fail();
        std::string text(size, '\0');
        if (!in_.read(text.data(), std::streamsize(size))) fail();
        return text;
    }

    // Past one field's value: a varint (0), 8 bytes (1), `size_if_delimited` bytes (2) or 4 bytes (5).
    void skip(int wire_type, uint64_t size_if_delimited) {
        uint64_t size = 0;
        switch (wire_type) {
            case 0: varint(); return;
            case 1: size = 8; break;
            case 2: size = size_if_delimited; break;
            case 5: size = 4; break;
            default: fail();  // groups (3, 4) are not in onnx.proto
        }
        in_.seekg(std::streamoff(size), std::ios::cur);
        if (!in_) fail();
    }

    std::streamoff position() { return in_.tellg(); }

    [[noreturn]] void fail() const {
        throw ssd::Error(path_, "not a readable ONNX file (its protobuf encoding is broken or cut short). Note: give an .onnx file from ssd-export");
    }

private:
    std::ifstream& in_;
    std::string path_;
};

// Fields 1 and 2 (both length-delimited strings) of the message of `size` bytes at the reader.
std::pair<std::string, std::string> read_two_strings(WireReader& reader, uint64_t size) {
    std::pair<std::string, std::string> fields;
    const std::streamoff end = reader.position() + std::streamoff(size);
    while (reader.position() < end) {
        uint64_t tag = reader.varint();
        uint64_t length = (tag & 7) == 2 ? reader.varint() : 0;
        if ((tag & 7) == 2 && (tag >> 3) == 1) fields.first = reader.bytes(length);
        else if ((tag & 7) == 2 && (tag >> 3) == 2) fields.second = reader.bytes(length);
        else reader.skip(int(tag & 7), length);
    }
    if (reader.position() != end) reader.fail();
    return fields;
}

OnnxHeader read_onnx_header(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw ssd::Error(path, "cannot open it");
    in.seekg(0, std::ios::end);
    const std::streamoff file_size = in.tellg();
    in.seekg(0);
    WireReader reader(in, path);
    OnnxHeader header;
    while (reader.position() < file_size) {
        uint64_t tag = reader.varint();
        uint64_t length = (tag & 7) == 2 ? reader.varint() : 0;
        if ((tag & 7) == 2 && (tag >> 3) == 14) {  // ModelProto.metadata_props
            header.metadata.insert(read_two_strings(reader, length));
        } else if ((tag & 7) == 2 && (tag >> 3) == 7) {  // ModelProto.graph: keep GraphProto.output's names
            const std::streamoff end = reader.position() + std::streamoff(length);
            while (reader.position() < end) {
                uint64_t inner = reader.varint();
                uint64_t size = (inner & 7) == 2 ? reader.varint() : 0;
                if ((inner & 7) == 2 && (inner >> 3) == 12) header.outputs.push_back(read_two_strings(reader, size).first);
                else reader.skip(int(inner & 7), size);
            }
            if (reader.position() != end) reader.fail();
        } else {
            reader.skip(int(tag & 7), length);
        }
    }
    if (reader.position() != file_size) reader.fail();  // a length past the end of the file
    return header;
}

// --- the program ----------------------------------------------------------------------------------

// OpenCV's messages read "OpenCV(5.0.0) <file>:<line>: error: (-215:...) <what> in function '<f>'".
std::string what_failed(const cv::Exception& error) {
    std::string message = error.what();
    size_t start = message.find("error: ");
    std::string line = start == std::string::npos ? message : message.substr(start + 7);
    line = line.substr(0, line.find('\n'));
    return line.substr(0, 300);
}

ssd::Metadata load(OpenCVModel& model, const ssd::Options& options) {
    model.path = options.model;
    if (options.device != "cpu" && options.device != "CPU") {
        throw ssd::Error(options.device, "this example runs OpenCV DNN on the CPU only. Note: use --device cpu");
    }
    OnnxHeader header = read_onnx_header(options.model);
    ssd::Metadata metadata = ssd::parse_metadata(header.metadata, options.model);
    ssd::require_outputs(header.outputs, options.model);
    if (metadata.precision != "fp32" && metadata.precision != "fp16") {
        throw ssd::Error(options.model, "it holds a " + metadata.precision + " model; OpenCV DNN runs float files. Note: export with --precision fp32");
    }
    try {
        model.net = cv::dnn::readNetFromONNX(options.model);
    } catch (const cv::Exception& error) {
        throw ssd::Error(options.model, "OpenCV DNN " CV_VERSION " cannot read it (" + what_failed(error) + "). Note: give an .onnx file from ssd-export");
    }
    return metadata;
}

// Image 0's part of `output` (its first `count` values), converted to `type` (CV_32S or CV_32F).
template <typename T>
std::vector<T> first_values(const cv::Mat& output, int type, size_t count, const std::string& name, const std::string& path) {
    if (output.total() < count || output.channels() != 1) {
        throw ssd::Error(path, "output " + name + " has an unexpected size. Note: expected the layout of ssd-export's NMS outputs");
    }
    cv::Mat converted;
    output.convertTo(converted, type);  // a new continuous Mat of the same shape (any number of dimensions)
    const T* data = reinterpret_cast<const T*>(converted.data);
    return std::vector<T>(data, data + count);
}

ssd::RawDetections infer(OpenCVModel& model, const std::vector<float>& input, const ssd::Metadata& metadata) {
    const int batch = int(input.size() / (3 * size_t(metadata.input_height) * size_t(metadata.input_width)));
    const int shape[4] = {batch, 3, metadata.input_height, metadata.input_width};
    cv::Mat images(4, shape, CV_32F, const_cast<float*>(input.data()));  // wraps, no copy
    std::vector<cv::Mat> outputs;
    std::vector<cv::String> names(ssd::kOutputNames.begin(), ssd::kOutputNames.end());
    try {
        model.net.setInput(images, "images");
        model.net.forward(outputs, names);
    } catch (const cv::Exception& error) {
        throw ssd::Error(model.path, "OpenCV DNN " CV_VERSION " failed to run it (" + what_failed(error) +
                                         "). Note: an SSDLite-MobileNetV3 file must be exported with ssd-export --opencv-dnn");
    }
    if (outputs.size() != names.size() || outputs[2].dims < 2) {
        throw ssd::Error(model.path, "OpenCV DNN returned no NMS outputs. Note: expected the layout of ssd-export's NMS outputs");
    }
    const size_t k = size_t(outputs[2].size[outputs[2].dims - 1]);  // scores [N, K]: image 0's rows come first
    ssd::RawDetections raw;
    raw.num_detections = first_values<int32_t>(outputs[0], CV_32S, 1, "num_detections", model.path)[0];
    raw.boxes = first_values<float>(outputs[1], CV_32F, k * 4, "boxes", model.path);
    raw.scores = first_values<float>(outputs[2], CV_32F, k, "scores", model.path);
    raw.labels = first_values<int32_t>(outputs[3], CV_32S, k, "labels", model.path);
    return raw;
}

}  // namespace

int main(int argc, char** argv) {
    OpenCVModel model;
    ssd::Runtime runtime{
        [&](const ssd::Options& options) { return load(model, options); },
        [&](const std::vector<float>& input, const ssd::Metadata& metadata) { return infer(model, input, metadata); },
    };
    ssd::Program program{"ssd_detect_opencv", "an .onnx file from ssd-export (with NMS; SSDLite-MobileNetV3: --opencv-dnn)", "cpu",
                         "cpu (OpenCV's own CPU backend)"};
    return ssd::run_program(argc, argv, program, runtime);
}
