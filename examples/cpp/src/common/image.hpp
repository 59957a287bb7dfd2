// Images for the examples: reading and writing files, the one pre-processing step, drawing.
//
// Reading gives what ssd_deploy.images.read_image gives in Python (cv2.imdecode, then gray,
// BGRA and 16-bit converted to BGR uint8), so the network sees the same pixels:
//   PNG  (libpng, when CMake found it): any bit depth and colour type; alpha is dropped,
//        16-bit is scaled with round(v / 257) as in Python.
//   JPEG (libjpeg, when CMake found it): baseline and progressive, gray or colour.
//   PPM/PGM (binary P6/P5, always): a fallback with no library at all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ssd {

// An image as OpenCV holds one: rows top to bottom, pixels B, G, R interleaved (H x W x 3 uint8).
struct Image {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> bgr;
};

// Which formats this build reads and writes, e.g. "PNG, JPEG, PPM/PGM".
std::string supported_formats();

// Read `path` as BGR uint8. Throws ssd::Error (exit code 1) naming the file and the problem:
// missing, empty, truncated, not an image, a format this build was compiled without.
Image read_image(const std::string& path);

// Write `image` in the format of `path`'s suffix (.png, .jpg/.jpeg, .ppm). Throws ssd::Error.
void write_image(const std::string& path, const Image& image);

// cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR) for 3-channel uint8 images,
// bit for bit (see image.cpp for why that matters and how it is done).
Image resize_linear(const Image& src, int width, int height);

// What runs the "opencv" resize method in this build: "OpenCV <version> cv::resize" when CMake
// found OpenCV (compile definition SSD_HAVE_OPENCV), else "built-in port of OpenCV's cv::resize".
std::string opencv_resize_implementation();

// torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False) of
// float32 planes [channels, src_height, src_width] to [channels, height, width]: torchvision's
// detection resize. The same weights and terms as PyTorch's CPU kernel; values agree to a few
// float32 roundings (the compiler may fuse multiply-adds differently).
std::vector<float> resize_bilinear_float(const std::vector<float>& src, int channels, int src_width, int src_height, int width, int height);

// ssd_deploy.pipeline.preprocess for one image: resize (stretch) to `width` x `height` unless
// already that size, BGR -> RGB, divide by 255. `resize` is the model's method (its metadata):
// "opencv" resizes the uint8 image (cv::resize, or resize_linear without OpenCV) before dividing, "torchvision" divides first
// and resizes the float image (resize_bilinear_float). Writes float32 [3, height, width] (CHW)
// to `out`, which must hold 3 * height * width floats.
void preprocess(const Image& image, int width, int height, const std::string& resize, float* out);

// A box outline of `thickness` pixels in `bgr` colour, corners in integer pixels (clipped).
void draw_rectangle(Image& image, int x1, int y1, int x2, int y2, const uint8_t bgr[3], int thickness, bool filled = false);

// `text` in a built-in 5 x 7 pixel font scaled by `scale`, top-left corner at (x, y), clipped.
// Letters are drawn in capitals; characters outside A-Z, 0-9 and " ._-:%" show as a box.
void draw_text(Image& image, int x, int y, const std::string& text, const uint8_t bgr[3], int scale);

// Width and height in pixels of `text` drawn by draw_text at `scale`.
int text_width(const std::string& text, int scale);
int text_height(int scale);

}  // namespace ssd
