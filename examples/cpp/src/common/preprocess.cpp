// The one pre-processing step (ssd_deploy.pipeline.preprocess) and the two resize methods an
// exported file may name in its metadata: "opencv" (cv2.resize INTER_LINEAR on uint8) and
// "torchvision" (PyTorch's bilinear interpolate on float32).
//
// The opencv method runs OpenCV's own cv::resize when CMake found OpenCV (SSD_HAVE_OPENCV), and
// otherwise resize_linear, a port of it with no dependency; both give Python's pixels exactly.
// The torchvision method is always the port of PyTorch's kernel: OpenCV's float resize is not it.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "image.hpp"

#ifdef SSD_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace ssd {
namespace {

// The opencv method: cv::resize itself where this build has OpenCV, else the port.
Image resize_opencv_method(const Image& src, int width, int height) {
#ifdef SSD_HAVE_OPENCV
    Image dst{width, height, std::vector<uint8_t>(size_t(width) * size_t(height) * 3)};
    // Mats over the Images' own pixels: cv::resize writes into `out` without reallocating,
    // since it already has the size and type asked for.
    const cv::Mat in(src.height, src.width, CV_8UC3, const_cast<uint8_t*>(src.bgr.data()));
    cv::Mat out(height, width, CV_8UC3, dst.bgr.data());
    cv::resize(in, out, out.size(), 0, 0, cv::INTER_LINEAR);
    return dst;
#else
    return resize_linear(src, width, height);
#endif
}

}  // namespace

std::string opencv_resize_implementation() {
#ifdef SSD_HAVE_OPENCV
    return "OpenCV " CV_VERSION " cv::resize";
#else
    return "built-in port of OpenCV's cv::resize";
#endif
}

Image resize_linear(const Image& src, int width, int height) {
    // Why bit for bit: OpenCV resizes 8-bit images in fixed point (11-bit weights), not in
    // float. A float bilinear resize differs from it by one grey level in about one value in
    // nine (a 300 x 200 shapes image to 128 x 128), which moved scores by up to 2e-3. OpenCV's C++ library is not needed for these examples, so this is
    // its generic INTER_LINEAR path (imgproc/src/resize.cpp: the coefficient set-up in
    // cv::hal::resize, HResizeLinear and VResizeLinear<uchar, int, short, FixedPtCast<int,
    // uchar, 22>>) re-written for 3 channels. Its SIMD branches compute the same integers, and
    // a 2x downscale that OpenCV hands to INTER_AREA gives the same result too. The test suite
    // checks that the network input equals Python's exactly.
    constexpr int kCoefScale = 1 << 11;  // INTER_RESIZE_COEF_SCALE
    constexpr int cn = 3;
    const int sw = src.width, sh = src.height;
    const double scale_x = 1.0 / (double(width) / sw), scale_y = 1.0 / (double(height) / sh);  // as OpenCV: 1 / inv_scale
    auto weight = [](float w) { return int16_t(std::lrint(w * kCoefScale)); };  // saturate_cast<short>: round half to even

    std::vector<int> xofs(static_cast<size_t>(width));
    std::vector<int16_t> alpha(size_t(width) * 2);
    for (int dx = 0; dx < width; ++dx) {
        float fx = float((dx + 0.5) * scale_x - 0.5);
        int sx = int(std::floor(fx));
        fx -= float(sx);
        if (sx < 0) fx = 0, sx = 0;
        if (sx >= sw - 1) fx = 0, sx = sw - 1;
        xofs[size_t(dx)] = sx;
        alpha[size_t(dx) * 2] = weight(1.f - fx);
        alpha[size_t(dx) * 2 + 1] = weight(fx);
    }

    // horizontal pass of one source row into int sums (values times 2048)
    auto hresize = [&](int sy, std::vector<int>& out) {
        const uint8_t* row = src.bgr.data() + size_t(sy) * sw * cn;
        for (int dx = 0; dx < width; ++dx) {
            int sx = xofs[size_t(dx)], a0 = alpha[size_t(dx) * 2], a1 = alpha[size_t(dx) * 2 + 1];
            const uint8_t* s0 = row + sx * cn;
            const uint8_t* s1 = sx + 1 < sw ? s0 + cn : s0;  // a1 is 0 there
            for (int c = 0; c < cn; ++c) out[size_t(dx) * cn + c] = s0[c] * a0 + s1[c] * a1;
        }
    };

    Image dst;
    dst.width = width;
    dst.height = height;
    dst.bgr.resize(size_t(width) * height * cn);
    std::vector<int> row0(size_t(width) * cn), row1(size_t(width) * cn);
    for (int dy = 0; dy < height; ++dy) {
        float fy = float((dy + 0.5) * scale_y - 0.5);
        int sy = int(std::floor(fy));
        fy -= float(sy);
        // rows are clamped to the image, the weights are not (OpenCV's y set-up has no such reset)
        int b0 = weight(1.f - fy), b1 = weight(fy);
        hresize(std::clamp(sy, 0, sh - 1), row0);
        hresize(std::clamp(sy + 1, 0, sh - 1), row1);
        uint8_t* out = dst.bgr.data() + size_t(dy) * width * cn;
        for (size_t i = 0; i < row0.size(); ++i) {
            out[i] = uint8_t((((b0 * (row0[i] >> 4)) >> 16) + ((b1 * (row1[i] >> 4)) >> 16) + 2) >> 2);
        }
    }
    return dst;
}

namespace {

// Source index and weights of one output coordinate, as PyTorch's compute_indices_weights_linear:
// src = scale * (dst + 0.5) - 0.5 clamped at 0, the second tap clamped to the last pixel.
struct Taps {
    int first = 0;
    int second = 0;
    float first_weight = 1.0f;
    float second_weight = 0.0f;
};

std::vector<Taps> linear_taps(int src_size, int dst_size) {
    std::vector<Taps> taps(dst_size);
    const float scale = float(src_size) / float(dst_size);
    for (int i = 0; i < dst_size; ++i) {
        float real = std::max(scale * (float(i) + 0.5f) - 0.5f, 0.0f);
        int index = std::min(int(std::floor(real)), src_size - 1);
        float lambda = std::min(std::max(real - float(index), 0.0f), 1.0f);
        taps[i] = {index, index + (index < src_size - 1 ? 1 : 0), 1.0f - lambda, lambda};
    }
    return taps;
}

}  // namespace

std::vector<float> resize_bilinear_float(const std::vector<float>& src, int channels, int src_width, int src_height, int width, int height) {
    const auto rows = linear_taps(src_height, height), cols = linear_taps(src_width, width);
    std::vector<float> out(size_t(channels) * width * height);
    const size_t src_plane = size_t(src_width) * src_height, plane = size_t(width) * height;
    for (int c = 0; c < channels; ++c) {
        const float* in = src.data() + c * src_plane;
        for (int y = 0; y < height; ++y) {
            const float* top = in + size_t(rows[y].first) * src_width;
            const float* bottom = in + size_t(rows[y].second) * src_width;
            for (int x = 0; x < width; ++x) {
                const Taps& t = cols[x];
                float upper = top[t.first] * t.first_weight + top[t.second] * t.second_weight;
                float lower = bottom[t.first] * t.first_weight + bottom[t.second] * t.second_weight;
                out[c * plane + size_t(y) * width + x] = upper * rows[y].first_weight + lower * rows[y].second_weight;
            }
        }
    }
    return out;
}

void preprocess(const Image& image, int width, int height, const std::string& resize, float* out) {
    if (resize == "torchvision") {
        const size_t src_plane = size_t(image.width) * image.height;
        std::vector<float> planes(3 * src_plane);
        for (size_t i = 0; i < src_plane; ++i) {
            for (int c = 0; c < 3; ++c) planes[c * src_plane + i] = float(image.bgr[i * 3 + (2 - c)]) / 255.0f;  // BGR -> RGB planes
        }
        if (image.width != width || image.height != height) {
            planes = resize_bilinear_float(planes, 3, image.width, image.height, width, height);
        }
        std::copy(planes.begin(), planes.end(), out);
        return;
    }
    const Image* source = &image;
    Image resized;
    if (image.width != width || image.height != height) {
        resized = resize_opencv_method(image, width, height);
        source = &resized;
    }
    const size_t plane = size_t(width) * height;
    for (size_t i = 0; i < plane; ++i) {
        for (int c = 0; c < 3; ++c) out[c * plane + i] = float(source->bgr[i * 3 + (2 - c)]) / 255.0f;  // BGR -> RGB planes
    }
}

}  // namespace ssd
