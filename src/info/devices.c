/*
 * devices.c — the device table of the cost model: dense peaks per
 * precision, memory bandwidth and capacity, SMs, L2, the host link, and the
 * source of every number. Datasheet figures are NVIDIA's dense (no
 * sparsity) numbers; measured ceilings come from the benchmark machines
 * (shared/GPU.md: cuBLAS through PyTorch at 8192^3, device-to-device copy).
 *
 * "this" finds the machine's first NVIDIA GPU through
 * /proc/driver/nvidia/gpus/<bus>/information — a text file the kernel
 * driver writes — so naming the local GPU never loads libcuda.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "info/info_internal.h"

#define GB 1000000000LL
#define MIB (1LL << 20)

/* Order of the peaks: fp64, fp64 tensor, fp32, tf32, bf16, fp16, fp8, int8. */
static const fl_info_device devices[] = {
    {"H100-SXM",
     "H100|H100-SXM|H100-SXM5|H100SXM|H100-80GB",
     "NVIDIA H100 SXM5 80GB HBM3",
     1,
     9,
     0,
     132,
     50 * MIB,
     80 * GB,
     228 * 1024,
     3350.0,
     2990.0,
     64.0,
     4.0,
     {33.5, 66.9, 66.9, 494.7, 989.4, 989.4, 1978.9, 1978.9},
     {0, 0, 51.0, 397.0, 798.0, 0, 0, 0},
     "NVIDIA H100 datasheet, SXM5 column, dense",
     "benchmark H100 (shared/GPU.md): cuBLAS via PyTorch 8192^3 fp32 51, tf32 397, bf16 728-798 "
     "(best 798) TFLOP/s; copy 2.99 TB/s",
     "datasheet: 80 GB HBM3 at 3.35 TB/s; PCIe Gen5 x16 64 GB/s per direction"},
    {"H100-PCIe",
     "H100-PCIE|H100PCIE|H100-PCIE-80GB",
     "NVIDIA H100 PCIe 80GB HBM2e",
     1,
     9,
     0,
     114,
     50 * MIB,
     80 * GB,
     228 * 1024,
     2000.0,
     0.0,
     64.0,
     4.0,
     {25.6, 51.2, 51.2, 378.0, 756.0, 756.0, 1513.0, 1513.0},
     {0, 0, 0, 0, 0, 0, 0, 0},
     "NVIDIA H100 datasheet, PCIe column, dense (sparse figures halved)",
     NULL,
     "datasheet: 80 GB HBM2e at 2.0 TB/s; PCIe Gen5 x16 64 GB/s per direction"},
    {"H200",
     "H200|H200-SXM|H200-141GB",
     "NVIDIA H200 SXM 141GB HBM3e",
     1,
     9,
     0,
     132,
     60 * MIB,
     141 * GB,
     228 * 1024,
     4800.0,
     4300.0,
     64.0,
     4.0,
     {33.5, 66.9, 66.9, 494.7, 989.4, 989.4, 1978.9, 1978.9},
     {0, 0, 0, 0, 798.0, 0, 0, 0},
     "NVIDIA H200 datasheet (same compute as H100 SXM5), dense",
     "benchmark H200 (shared/GPU.md): bf16 cuBLAS via PyTorch 769-798 TFLOP/s, copy 4.3 TB/s; L2 60 MB as "
     "the driver reports it there",
     "datasheet: 141 GB HBM3e at 4.8 TB/s; PCIe Gen5 x16 64 GB/s per direction"},
    {"A100-40GB",
     "A100-40GB|A100-SXM4-40GB|A100-40G",
     "NVIDIA A100 SXM4 40GB",
     1,
     8,
     0,
     108,
     40 * MIB,
     40 * GB,
     164 * 1024,
     1555.0,
     0.0,
     32.0,
     4.0,
     {9.7, 19.5, 19.5, 156.0, 312.0, 312.0, 0.0, 624.0},
     {0, 0, 0, 0, 0, 0, 0, 0},
     "NVIDIA A100 datasheet, dense (no FP8 on Ampere)",
     NULL,
     "datasheet: 40 GB HBM2 at 1.555 TB/s; PCIe Gen4 x16 32 GB/s per direction"},
    {"A100-80GB",
     "A100|A100-80GB|A100-SXM4-80GB|A100-80G",
     "NVIDIA A100 SXM4 80GB",
     1,
     8,
     0,
     108,
     40 * MIB,
     80 * GB,
     164 * 1024,
     2039.0,
     0.0,
     32.0,
     4.0,
     {9.7, 19.5, 19.5, 156.0, 312.0, 312.0, 0.0, 624.0},
     {0, 0, 0, 0, 0, 0, 0, 0},
     "NVIDIA A100 datasheet, dense (no FP8 on Ampere)",
     NULL,
     "datasheet: 80 GB HBM2e at 2.039 TB/s; PCIe Gen4 x16 32 GB/s per direction"},
    {"L40S",
     "L40S|L40-S",
     "NVIDIA L40S 48GB GDDR6",
     1,
     8,
     9,
     142,
     96 * MIB,
     48 * GB,
     100 * 1024,
     864.0,
     0.0,
     32.0,
     4.0,
     {1.4, 0.0, 91.6, 183.0, 362.0, 362.0, 733.0, 733.0},
     {0, 0, 0, 0, 0, 0, 0, 0},
     "NVIDIA L40S datasheet, dense (sparse figures halved); FP64 is 1/64 of FP32",
     NULL,
     "datasheet: 48 GB GDDR6 at 864 GB/s; PCIe Gen4 x16 32 GB/s per direction"},
    {"B200",
     "B200|HGX-B200|B200-SXM",
     "NVIDIA B200 180GB HBM3e (HGX)",
     1,
     10,
     0,
     148,
     126 * MIB,
     180 * GB,
     228 * 1024,
     8000.0,
     0.0,
     64.0,
     4.0,
     {40.0, 40.0, 80.0, 1100.0, 2250.0, 2250.0, 4500.0, 4500.0},
     {0, 0, 0, 0, 0, 0, 0, 0},
     "NVIDIA HGX B200 datasheet, per GPU, dense (sparse figures halved)",
     NULL,
     "datasheet: 180 GB HBM3e at 8 TB/s; PCIe Gen5 x16 64 GB/s per direction"},
    {"cpu",
     "cpu|host",
     "a nominal 16-core x86-64 server CPU (AVX2 FMA, 2.5 GHz, 8 DDR5 channels)",
     0,
     0,
     0,
     16,
     32 * MIB,
     128 * GB,
     0,
     100.0,
     0.0,
     0.0,
     2.0,
     {0.64, 0.0, 1.28, 0.0, 0.0, 0.0, 0.0, 0.0},
     {0, 0, 0, 0, 0, 0, 0, 0},
     "nominal: 16 cores x 2 FMA units x 8 fp32 lanes x 2 flops x 2.5 GHz (an assumption, not a part)",
     NULL,
     "nominal: 100 GB/s DRAM, 128 GB (an assumption)"},
};

#define N_DEVICES ((int)(sizeof devices / sizeof *devices))

int fl_info_device_count(void)
{
    return N_DEVICES;
}

const fl_info_device *fl_info_device_at(int i)
{
    return i >= 0 && i < N_DEVICES ? &devices[i] : NULL;
}

/* Whether `name` is a word of the '|'-separated list, exactly or ASCII
 * case-insensitively (one walk of the list: no strchr, strlen or
 * strncasecmp per word). */
static int word_match(const char *list, const char *name, int ci)
{
    for (const char *p = list; p && *p;) {
        const char *q = name;
        if (ci)
            while (*q && *p != '|' && fli_lower((unsigned char)*p) == fli_lower((unsigned char)*q))
                p++, q++;
        else
            while (*q && *p != '|' && *p == *q)
                p++, q++;
        if (!*q && (*p == '|' || !*p))
            return 1;
        while (*p && *p != '|')
            p++;
        if (*p)
            p++;
    }
    return 0;
}

static int contains_ci(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    for (; *hay; hay++)
        if (!strncasecmp(hay, needle, nl))
            return 1;
    return 0;
}

/* A driver's model string ("NVIDIA H100 80GB HBM3") to a table row. */
static const fl_info_device *from_model_name(const char *model)
{
    const char *tag = NULL;
    if (contains_ci(model, "H100"))
        tag = contains_ci(model, "PCIe") ? "H100-PCIe" : "H100-SXM";
    else if (contains_ci(model, "H200"))
        tag = "H200";
    else if (contains_ci(model, "A100"))
        tag = contains_ci(model, "40G") ? "A100-40GB" : "A100-80GB";
    else if (contains_ci(model, "L40S"))
        tag = "L40S";
    else if (contains_ci(model, "B200"))
        tag = "B200";
    if (!tag)
        return NULL;
    for (int i = 0; i < N_DEVICES; i++)
        if (!strcmp(devices[i].name, tag))
            return &devices[i];
    return NULL;
}

/* This machine's first NVIDIA GPU, from the kernel driver's text files. */
static const fl_info_device *this_machine(void)
{
    DIR *dir = opendir("/proc/driver/nvidia/gpus");
    const fl_info_device *found = NULL;
    if (dir) {
        struct dirent *de;
        while (!found && (de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char path[512], line[256];
            snprintf(path, sizeof path, "/proc/driver/nvidia/gpus/%s/information", de->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            while (fgets(line, sizeof line, f))
                if (!strncmp(line, "Model:", 6)) {
                    found = from_model_name(line + 6);
                    break;
                }
            fclose(f);
        }
        closedir(dir);
    }
    return found ? found : &devices[N_DEVICES - 1]; /* the CPU */
}

const fl_info_device *fli_device_lookup(const char *name)
{
    if (!name)
        return &devices[0];
    /* Spelled as in the table first (the common case: "H100", "H200",
     * "cpu"), then ignoring case. No name or alias of one device equals
     * another device's ignoring case (tests/c/test_info.c checks), so the
     * exact pass finds what the second would. */
    for (int i = 0; i < N_DEVICES; i++)
        if (devices[i].name[0] == name[0] && fli_eq(devices[i].name, name))
            return &devices[i];
    for (int i = 0; i < N_DEVICES; i++)
        if (word_match(devices[i].aliases, name, 0))
            return &devices[i];
    for (int i = 0; i < N_DEVICES; i++)
        if (fli_eq_ci(devices[i].name, name))
            return &devices[i];
    for (int i = 0; i < N_DEVICES; i++)
        if (word_match(devices[i].aliases, name, 1))
            return &devices[i];
    size_t nl = strlen(name);
    if (!strcasecmp(name, "this"))
        return this_machine();
    if (nl > 6 && contains_ci(name, "NVIDIA"))
        return from_model_name(name);
    return NULL;
}

const fl_info_device *fl_info_device_find(const char *name)
{
    return name ? fli_device_lookup(name) : NULL;
}

void fli_device_hw(const fl_info_device *dev, fl_hw_props *hw)
{
    memset(hw, 0, sizeof *hw);
    /* (strncpy would pad the whole field with zeros again: this runs on
     * every estimate that routes) */
    size_t dl = strlen(dev->description);
    memcpy(hw->name, dev->description, dl < sizeof hw->name - 1 ? dl : sizeof hw->name - 1);
    /* The routing tag is the family name, as the driver-side detection
     * (src/core/hw.c) reports it: "H100", "A100"... */
    size_t t = 0;
    while (dev->name[t] && dev->name[t] != '-' && t < sizeof hw->tag - 1)
        t++;
    memcpy(hw->tag, dev->name, t);
    hw->tag[t] = '\0';
    hw->sm_major = dev->sm_major;
    hw->sm_minor = dev->sm_minor;
    hw->sm_count = dev->sm_count;
    hw->l2_bytes = dev->l2_bytes;
    hw->smem_per_sm_bytes = dev->smem_per_sm_bytes;
    hw->smem_per_block_optin_bytes = dev->smem_per_sm_bytes > 1024 ? dev->smem_per_sm_bytes - 1024 : 0;
    hw->total_mem_bytes = dev->memory_bytes;
    hw->is_ampere = dev->sm_major == 8;
    hw->is_hopper = dev->sm_major == 9;
    hw->is_blackwell = dev->sm_major == 10 || dev->sm_major == 12;
    hw->sm90_enabled = hw->is_hopper;
}

/* ---- dtypes ------------------------------------------------------------ */

int fli_dtype_parse(const char *s, fl_dtype *out)
{
    static const struct {
        const char *name;
        fl_dtype dt;
    } names[] = {
        {"f32", FL_DTYPE_F32},     {"float32", FL_DTYPE_F32}, {"fp32", FL_DTYPE_F32},
        {"float", FL_DTYPE_F32},   {"single", FL_DTYPE_F32},  {"f64", FL_DTYPE_F64},
        {"float64", FL_DTYPE_F64}, {"fp64", FL_DTYPE_F64},    {"double", FL_DTYPE_F64},
        {"f16", FL_DTYPE_F16},     {"float16", FL_DTYPE_F16}, {"fp16", FL_DTYPE_F16},
        {"half", FL_DTYPE_F16},    {"bf16", FL_DTYPE_BF16},   {"bfloat16", FL_DTYPE_BF16},
    };
    if (!s || !*s) {
        *out = FL_DTYPE_F32;
        return 0;
    }
    /* as spelled in the table first (the names differ ignoring case too) */
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].name[0] == s[0] && fli_eq(names[i].name, s)) {
            *out = names[i].dt;
            return 0;
        }
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (fli_eq_ci(names[i].name, s)) {
            *out = names[i].dt;
            return 0;
        }
    return -1;
}

size_t fli_dtype_bytes(fl_dtype dt)
{
    switch (dt) {
    case FL_DTYPE_F64: return 8;
    case FL_DTYPE_F16:
    case FL_DTYPE_BF16: return 2;
    default: return 4;
    }
}

const char *fli_dtype_canon(fl_dtype dt)
{
    switch (dt) {
    case FL_DTYPE_F64: return "f64";
    case FL_DTYPE_F16: return "f16";
    case FL_DTYPE_BF16: return "bf16";
    default: return "f32";
    }
}

fl_info_prec fli_dtype_prec(fl_dtype dt)
{
    switch (dt) {
    case FL_DTYPE_F64: return FL_INFO_PREC_FP64;
    case FL_DTYPE_F16: return FL_INFO_PREC_FP16;
    case FL_DTYPE_BF16: return FL_INFO_PREC_BF16;
    default: return FL_INFO_PREC_FP32;
    }
}

const char *fl_info_prec_name(fl_info_prec p)
{
    static const char *const names[] = {"fp64", "fp64-tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "int8"};
    return p >= 0 && p < FL_INFO_NPREC ? names[p] : "?";
}
