#include "image.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common.hpp"

#ifdef SSD_HAVE_PNG
#include <png.h>
#endif
#ifdef SSD_HAVE_JPEG
#include <jpeglib.h>
#endif

namespace ssd {
namespace {

std::vector<uint8_t> read_file(const std::string& path) {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) throw Error(path, "no such file", kExitImage);
    if (!std::filesystem::is_regular_file(path, error)) throw Error(path, "not a file", kExitImage);
    std::ifstream file(path, std::ios::binary);
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    if (!file.good() && !file.eof()) throw Error(path, "cannot read the file", kExitImage);
    if (data.empty()) throw Error(path, "empty file", kExitImage);
    return data;
}

bool starts_with(const std::vector<uint8_t>& data, const char* magic, size_t size) {
    return data.size() >= size && std::memcmp(data.data(), magic, size) == 0;
}

// round(v / 257): how ssd_deploy.images.to_bgr_uint8 scales 16-bit images to 8 bits.
uint8_t to_8bit(unsigned v) { return uint8_t(std::lround(v / 257.0)); }

// Interleaved RGB rows (8- or 16-bit, 16-bit in host byte order) -> BGR uint8.
void rgb_to_bgr(const uint8_t* rgb, int bit_depth, size_t pixels, uint8_t* bgr) {
    for (size_t i = 0; i < pixels; ++i) {
        for (int c = 0; c < 3; ++c) {
            uint8_t value;
            if (bit_depth == 16) {
                uint16_t v;
                std::memcpy(&v, rgb + (i * 3 + c) * 2, 2);
                value = to_8bit(v);
            } else {
                value = rgb[i * 3 + c];
            }
            bgr[i * 3 + (2 - c)] = value;
        }
    }
}

// --- PPM / PGM (binary), the fallback that needs no library ---------------------------------

bool read_pnm(const std::string& path, const std::vector<uint8_t>& data, Image& image) {
    if (data.size() < 2 || data[0] != 'P' || (data[1] != '5' && data[1] != '6')) return false;
    size_t pos = 2;
    auto next_number = [&]() -> long {
        while (pos < data.size() && (std::isspace(data[pos]) || data[pos] == '#')) {
            if (data[pos] == '#') while (pos < data.size() && data[pos] != '\n') ++pos;
            else ++pos;
        }
        long value = 0;
        size_t start = pos;
        while (pos < data.size() && std::isdigit(data[pos]) && value < 1000000) value = value * 10 + (data[pos++] - '0');
        return pos == start ? -1 : value;
    };
    long width = next_number(), height = next_number(), maxval = next_number();
    if (width < 1 || height < 1 || maxval < 1 || maxval > 65535 || pos >= data.size()) {
        throw Error(path, "malformed PPM/PGM header", kExitImage);
    }
    ++pos;  // the single whitespace after maxval
    int channels = data[1] == '6' ? 3 : 1, bytes = maxval > 255 ? 2 : 1;
    size_t pixels = size_t(width) * size_t(height);
    if (data.size() - pos < pixels * channels * bytes) throw Error(path, "truncated PPM/PGM (fewer pixels than its header says)", kExitImage);
    image.width = int(width);
    image.height = int(height);
    image.bgr.resize(pixels * 3);
    for (size_t i = 0; i < pixels; ++i) {
        for (int c = 0; c < 3; ++c) {
            size_t at = pos + (i * channels + (channels == 3 ? c : 0)) * bytes;
            unsigned v = bytes == 2 ? (unsigned(data[at]) << 8 | data[at + 1]) : data[at];  // big-endian samples
            if (maxval != 255) v = bytes == 2 && maxval == 65535 ? to_8bit(v) : unsigned(std::lround(v * 255.0 / maxval));
            image.bgr[i * 3 + (2 - c)] = uint8_t(v);
        }
    }
    return true;
}

void write_pnm(const std::string& path, const Image& image) {
    std::ofstream file(path, std::ios::binary);
    file << "P6\n" << image.width << " " << image.height << "\n255\n";
    std::vector<uint8_t> rgb(image.bgr.size());
    for (size_t i = 0; i < rgb.size(); i += 3) rgb[i] = image.bgr[i + 2], rgb[i + 1] = image.bgr[i + 1], rgb[i + 2] = image.bgr[i];
    file.write(reinterpret_cast<const char*>(rgb.data()), std::streamsize(rgb.size()));
    if (!file) throw Error(path, "cannot write the image");
}

// --- PNG (libpng) ---------------------------------------------------------------------------
#ifdef SSD_HAVE_PNG

struct PngSource {
    const std::vector<uint8_t>* data;
    size_t pos;
    char message[200];
};

void png_fail(png_structp png, png_const_charp message) {
    auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
    std::snprintf(source->message, sizeof source->message, "%s", message);
    png_longjmp(png, 1);
}

void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, png_size_t size) {
    auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
    if (source->pos + size > source->data->size()) png_error(png, "unexpected end of file");
    std::memcpy(out, source->data->data() + source->pos, size);
    source->pos += size;
}

// Decodes into `pixels` (RGB, 8 or 16 bits per sample); returns "" or libpng's message.
// C-style on purpose: libpng reports errors by longjmp, which must not cross C++ destructors,
// so every object with one lives in the caller.
std::string decode_png(PngSource& source, int& width, int& height, int& bit_depth, std::vector<uint8_t>& pixels, std::vector<png_bytep>& rows) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, png_fail, png_ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!info) {
        png_destroy_read_struct(&png, nullptr, nullptr);
        return "out of memory";
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, nullptr);
        return source.message;
    }
    png_set_read_fn(png, &source, png_read_memory);
    png_read_info(png, info);
    int color_type = png_get_color_type(png, info);
    bit_depth = png_get_bit_depth(png, info);
    // As cv2.imdecode(IMREAD_UNCHANGED) then to_bgr_uint8: palette and low-bit gray expanded to
    // 8 bits, gray replicated to three channels, alpha dropped (not blended), 16 bits kept here
    // and scaled by round(v / 257) below.
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    if (color_type & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
    if (bit_depth == 16) png_set_swap(png);  // host (little-endian) order
    bit_depth = bit_depth == 16 ? 16 : 8;
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    width = int(png_get_image_width(png, info));
    height = int(png_get_image_height(png, info));
    size_t row_bytes = png_get_rowbytes(png, info);
    pixels.resize(row_bytes * size_t(height));
    rows.resize(size_t(height));
    for (int y = 0; y < height; ++y) rows[size_t(y)] = pixels.data() + row_bytes * size_t(y);
    png_read_image(png, rows.data());
    png_read_end(png, nullptr);
    png_destroy_read_struct(&png, &info, nullptr);
    return "";
}

void read_png(const std::string& path, const std::vector<uint8_t>& data, Image& image) {
    PngSource source{&data, 0, {0}};
    int width = 0, height = 0, bit_depth = 8;
    std::vector<uint8_t> pixels;
    std::vector<png_bytep> rows;
    std::string problem = decode_png(source, width, height, bit_depth, pixels, rows);
    if (!problem.empty()) throw Error(path, "not a readable PNG (libpng: " + problem + ")", kExitImage);
    image.width = width;
    image.height = height;
    image.bgr.resize(size_t(width) * size_t(height) * 3);
    rgb_to_bgr(pixels.data(), bit_depth, size_t(width) * size_t(height), image.bgr.data());
}

std::string encode_png(FILE* file, const Image& image, std::vector<png_bytep>& rows) {
    PngSource source{nullptr, 0, {0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &source, png_fail, png_ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!info) {
        png_destroy_write_struct(&png, nullptr);
        return "out of memory";
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return source.message;
    }
    png_init_io(png, file);
    png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_set_bgr(png);
    png_write_image(png, rows.data());
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    return "";
}

void write_png(const std::string& path, const Image& image) {
    FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) throw Error(path, "cannot open for writing");
    std::vector<png_bytep> rows(size_t(image.height));
    for (int y = 0; y < image.height; ++y) rows[size_t(y)] = const_cast<uint8_t*>(image.bgr.data()) + size_t(y) * image.width * 3;
    std::string problem = encode_png(file, image, rows);
    bool closed = std::fclose(file) == 0;
    if (!problem.empty() || !closed) throw Error(path, "cannot write the PNG (" + (problem.empty() ? "close failed" : problem) + ")");
}

#endif  // SSD_HAVE_PNG

// --- JPEG (libjpeg) -------------------------------------------------------------------------
#ifdef SSD_HAVE_JPEG

struct JpegErrors {
    jpeg_error_mgr manager;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr info) {
    auto* errors = reinterpret_cast<JpegErrors*>(info->err);
    info->err->format_message(info, errors->message);
    std::longjmp(errors->jump, 1);
}

// As decode_png: C-style because libjpeg reports errors by longjmp.
std::string decode_jpeg(const std::vector<uint8_t>& data, int& width, int& height, int& channels, std::vector<uint8_t>& pixels) {
    jpeg_decompress_struct info;
    JpegErrors errors;
    info.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = jpeg_fail;
    if (setjmp(errors.jump)) {
        jpeg_destroy_decompress(&info);
        return errors.message;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data.data(), static_cast<unsigned long>(data.size()));
    jpeg_read_header(&info, TRUE);
    if (info.num_components == 4) {
        jpeg_destroy_decompress(&info);
        return "CMYK JPEG is not supported; convert it to RGB";
    }
    // libjpeg's defaults (ISLOW DCT, smooth upsampling) are what OpenCV's decoder uses
    channels = info.num_components == 1 ? 1 : 3;
    info.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    width = int(info.output_width);
    height = int(info.output_height);
    pixels.resize(size_t(width) * size_t(height) * size_t(channels));
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = pixels.data() + size_t(info.output_scanline) * size_t(width) * size_t(channels);
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    jpeg_destroy_decompress(&info);
    return "";
}

void read_jpeg(const std::string& path, const std::vector<uint8_t>& data, Image& image) {
    int width = 0, height = 0, channels = 3;
    std::vector<uint8_t> pixels;
    std::string problem = decode_jpeg(data, width, height, channels, pixels);
    if (!problem.empty()) throw Error(path, "not a readable JPEG (libjpeg: " + problem + ")", kExitImage);
    image.width = width;
    image.height = height;
    image.bgr.resize(size_t(width) * size_t(height) * 3);
    for (size_t i = 0; i < size_t(width) * size_t(height); ++i) {
        for (int c = 0; c < 3; ++c) image.bgr[i * 3 + (2 - c)] = pixels[i * channels + (channels == 3 ? c : 0)];
    }
}

std::string encode_jpeg(FILE* file, const std::vector<uint8_t>& rgb, int width, int height) {
    jpeg_compress_struct info;
    JpegErrors errors;
    info.err = jpeg_std_error(&errors.manager);
    errors.manager.error_exit = jpeg_fail;
    if (setjmp(errors.jump)) {
        jpeg_destroy_compress(&info);
        return errors.message;
    }
    jpeg_create_compress(&info);
    jpeg_stdio_dest(&info, file);
    info.image_width = JDIMENSION(width);
    info.image_height = JDIMENSION(height);
    info.input_components = 3;
    info.in_color_space = JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, 95, TRUE);  // OpenCV's default quality
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = const_cast<uint8_t*>(rgb.data()) + size_t(info.next_scanline) * size_t(width) * 3;
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    return "";
}

void write_jpeg(const std::string& path, const Image& image) {
    std::vector<uint8_t> rgb(image.bgr.size());
    for (size_t i = 0; i < rgb.size(); i += 3) rgb[i] = image.bgr[i + 2], rgb[i + 1] = image.bgr[i + 1], rgb[i + 2] = image.bgr[i];
    FILE* file = std::fopen(path.c_str(), "wb");
    if (!file) throw Error(path, "cannot open for writing");
    std::string problem = encode_jpeg(file, rgb, image.width, image.height);
    bool closed = std::fclose(file) == 0;
    if (!problem.empty() || !closed) throw Error(path, "cannot write the JPEG (" + (problem.empty() ? "close failed" : problem) + ")");
}

#endif  // SSD_HAVE_JPEG

std::string lower_suffix(const std::string& path) {
    std::string suffix = std::filesystem::path(path).extension().string();
    std::transform(suffix.begin(), suffix.end(), suffix.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return suffix;
}

// --- the 5 x 7 font: each glyph is 7 rows, the low 5 bits of each row from left (bit 4) to right
struct Glyph {
    char c;
    uint8_t rows[7];
};
constexpr Glyph kFont[] = {
    {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}}, {'C', {14, 17, 16, 16, 16, 17, 14}},
    {'D', {30, 17, 17, 17, 17, 17, 30}}, {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
    {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}}, {'I', {14, 4, 4, 4, 4, 4, 14}},
    {'J', {7, 2, 2, 2, 2, 18, 12}},      {'K', {17, 18, 20, 24, 20, 18, 17}}, {'L', {16, 16, 16, 16, 16, 16, 31}},
    {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}}, {'O', {14, 17, 17, 17, 17, 17, 14}},
    {'P', {30, 17, 17, 30, 16, 16, 16}}, {'Q', {14, 17, 17, 17, 21, 18, 13}}, {'R', {30, 17, 17, 30, 20, 18, 17}},
    {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},       {'U', {17, 17, 17, 17, 17, 17, 14}},
    {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}}, {'X', {17, 17, 10, 4, 10, 17, 17}},
    {'Y', {17, 17, 10, 4, 4, 4, 4}},     {'Z', {31, 1, 2, 4, 8, 16, 31}},     {'0', {14, 17, 19, 21, 25, 17, 14}},
    {'1', {4, 12, 4, 4, 4, 4, 14}},      {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
    {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},   {'6', {6, 8, 16, 30, 17, 17, 14}},
    {'7', {31, 1, 2, 4, 8, 8, 8}},       {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
    {' ', {0, 0, 0, 0, 0, 0, 0}},        {'.', {0, 0, 0, 0, 0, 12, 12}},      {'_', {0, 0, 0, 0, 0, 0, 31}},
    {'-', {0, 0, 0, 31, 0, 0, 0}},       {':', {0, 12, 12, 0, 12, 12, 0}},    {'%', {24, 25, 2, 4, 8, 19, 3}},
};
constexpr uint8_t kUnknownGlyph[7] = {31, 17, 17, 17, 17, 17, 31};

const uint8_t* glyph(char c) {
    char upper = char(std::toupper(static_cast<unsigned char>(c)));
    for (const Glyph& g : kFont) {
        if (g.c == upper) return g.rows;
    }
    return kUnknownGlyph;
}

void put_pixel(Image& image, int x, int y, const uint8_t bgr[3]) {
    if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
    std::memcpy(&image.bgr[(size_t(y) * image.width + x) * 3], bgr, 3);
}

}  // namespace

std::string supported_formats() {
    std::string formats;
#ifdef SSD_HAVE_PNG
    formats += "PNG, ";
#endif
#ifdef SSD_HAVE_JPEG
    formats += "JPEG, ";
#endif
    return formats + "PPM/PGM";
}

Image read_image(const std::string& path) {
    std::vector<uint8_t> data = read_file(path);
    Image image;
    // The same truncation checks as ssd_deploy.images.truncation_problem: libjpeg, like OpenCV,
    // decodes a cut-off JPEG into a half-grey picture with only a warning.
    if (starts_with(data, "\xff\xd8\xff", 3)) {
        size_t end = data.size();
        while (end > 0 && data[end - 1] == 0) --end;
        bool has_eoi = false;
        for (size_t i = end >= 64 ? end - 64 : 0; i + 1 < end; ++i) has_eoi |= data[i] == 0xFF && data[i + 1] == 0xD9;
        if (!has_eoi) throw Error(path, "truncated JPEG (no end-of-image marker)", kExitImage);
#ifdef SSD_HAVE_JPEG
        read_jpeg(path, data, image);
        return image;
#else
        throw Error(path, "JPEG, but this program was built without libjpeg. Note: install libjpeg's headers and rebuild, or convert the image to PPM", kExitImage);
#endif
    }
    if (starts_with(data, "\x89PNG\r\n\x1a\n", 8)) {
        const char* tail = reinterpret_cast<const char*>(data.data()) + (data.size() > 32 ? data.size() - 32 : 0);
        if (std::string_view(tail, data.size() > 32 ? 32 : data.size()).find("IEND") == std::string_view::npos) {
            throw Error(path, "truncated PNG (no IEND chunk)", kExitImage);
        }
#ifdef SSD_HAVE_PNG
        read_png(path, data, image);
        return image;
#else
        throw Error(path, "PNG, but this program was built without libpng. Note: install libpng's headers and rebuild, or convert the image to PPM", kExitImage);
#endif
    }
    if (read_pnm(path, data, image)) return image;
    throw Error(path, "not a readable image (this program reads " + supported_formats() + ")", kExitImage);
}

void write_image(const std::string& path, const Image& image) {
    std::string suffix = lower_suffix(path);
#ifdef SSD_HAVE_PNG
    if (suffix == ".png") return write_png(path, image);
#endif
#ifdef SSD_HAVE_JPEG
    if (suffix == ".jpg" || suffix == ".jpeg") return write_jpeg(path, image);
#endif
    if (suffix == ".ppm") return write_pnm(path, image);
    throw Error(path, "cannot write " + (suffix.empty() ? std::string("a file without suffix") : suffix + " files") +
                          ". Note: this program writes " + supported_formats() + " (.ppm)");
}

void draw_rectangle(Image& image, int x1, int y1, int x2, int y2, const uint8_t bgr[3], int thickness, bool filled) {
    int grow = filled ? 0 : (thickness - 1) / 2;
    for (int y = std::max(0, std::min(y1, y2) - grow); y <= std::min(image.height - 1, std::max(y1, y2) + grow); ++y) {
        for (int x = std::max(0, std::min(x1, x2) - grow); x <= std::min(image.width - 1, std::max(x1, x2) + grow); ++x) {
            bool edge = filled || std::abs(y - y1) <= grow || std::abs(y - y2) <= grow || std::abs(x - x1) <= grow || std::abs(x - x2) <= grow;
            if (edge) put_pixel(image, x, y, bgr);
        }
    }
}

void draw_text(Image& image, int x, int y, const std::string& text, const uint8_t bgr[3], int scale) {
    for (size_t i = 0; i < text.size(); ++i) {
        const uint8_t* rows = glyph(text[i]);
        int left = x + int(i) * 6 * scale;
        for (int r = 0; r < 7; ++r) {
            for (int c = 0; c < 5; ++c) {
                if (!(rows[r] & (16 >> c))) continue;
                for (int dy = 0; dy < scale; ++dy)
                    for (int dx = 0; dx < scale; ++dx) put_pixel(image, left + c * scale + dx, y + r * scale + dy, bgr);
            }
        }
    }
}

int text_width(const std::string& text, int scale) { return text.empty() ? 0 : int(text.size() * 6 - 1) * scale; }

int text_height(int scale) { return 7 * scale; }

}  // namespace ssd
