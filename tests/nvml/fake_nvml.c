/*
 * A fake libnvidia-ml.so for tests: two scripted GPUs, no driver needed.
 *
 * It implements only the NVML entry points the inferprobe collector (through nvml-wrapper) calls;
 * nvml-wrapper resolves symbols lazily, so a missing one would surface as an error at call time.
 * Signatures and struct layouts follow nvml.h as bound by nvml-wrapper-sys.
 *
 * GPU 0 answers every reading. GPU 1 answers NVML_ERROR_NOT_SUPPORTED for power usage, energy,
 * clocks event reasons, PCIe throughput, ECC counters and fans, like a board without those
 * sensors.
 *
 * The values change with the "step": the number of nvmlDeviceGetCount_v2 calls so far, which
 * the collector makes exactly once per refresh. From step 2 on: GPU 0's process 1002 has exited,
 * GPU 0's energy counter has grown, and GPU 1's temperature read fails with NVML_ERROR_UNKNOWN.
 * The state is per loaded copy of the library, so each test loads its own copy of the file.
 */

#include <string.h>

typedef unsigned int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_UNKNOWN 999

#define NVML_CLOCK_SM 1
#define NVML_CLOCK_MEM 2
#define NVML_PCIE_UTIL_TX_BYTES 0
#define NVML_PCIE_UTIL_RX_BYTES 1
#define NVML_MEMORY_ERROR_TYPE_CORRECTED 0
#define NVML_MEMORY_ERROR_TYPE_UNCORRECTED 1
#define NVML_VOLATILE_ECC 0
#define NVML_AGGREGATE_ECC 1
#define NVML_TEMPERATURE_GPU 0

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef struct {
    unsigned int pid;
    const char *name;
    unsigned long long used;
    int gone_from_step; /* 0: never leaves */
} fake_process;

typedef struct {
    const char *uuid;
    const char *name;
    int full; /* 1: every reading supported */
    unsigned int util_gpu, util_mem;
    unsigned long long mem_total, mem_used;
    unsigned int temperature;
    unsigned int power_mw, power_limit_mw;
    unsigned long long energy_mj, energy_mj_step2;
    unsigned int sm_mhz, mem_mhz;
    unsigned long long clock_events;
    unsigned int pcie_rx_kb, pcie_tx_kb;
    unsigned long long ecc_corrected, ecc_uncorrected;
    unsigned int fans[2];
    unsigned int num_fans;
    fake_process compute[3];
    unsigned int n_compute;
    fake_process graphics[1];
    unsigned int n_graphics;
} fake_device;

#define GIB 1073741824ULL
#define MIB 1048576ULL

static fake_device devices[2] = {
    {
        .uuid = "GPU-fake-0000",
        .name = "Fake NVIDIA H100 80GB HBM3",
        .full = 1,
        .util_gpu = 75,
        .util_mem = 40,
        .mem_total = 80 * GIB,
        .mem_used = 4 * GIB,
        .temperature = 65,
        .power_mw = 250500,
        .power_limit_mw = 700000,
        .energy_mj = 123456750ULL,
        .energy_mj_step2 = 123556500ULL,
        .sm_mhz = 1980,
        .mem_mhz = 2619,
        .clock_events = 0x4 | 0x40, /* sw_power_cap, hw_thermal_slowdown */
        .pcie_rx_kb = 2000,
        .pcie_tx_kb = 1000,
        .ecc_corrected = 7,
        .ecc_uncorrected = 1,
        .fans = {40, 45},
        .num_fans = 2,
        .compute = {
            {1001, "/usr/bin/python3", 2 * GIB, 0},
            {1002, "/opt/venv/bin/vllm", 6 * GIB, 2},
        },
        .n_compute = 2,
        .graphics = {{1003, "/usr/lib/xorg/Xorg", 64 * MIB, 0}},
        .n_graphics = 1,
    },
    {
        .uuid = "GPU-fake-0001",
        .name = "Fake NVIDIA L4",
        .full = 0,
        .util_gpu = 10,
        .util_mem = 5,
        .mem_total = 24 * GIB,
        .mem_used = 1 * GIB,
        .temperature = 40,
        .power_limit_mw = 72000,
        .sm_mhz = 1410,
        .mem_mhz = 6251,
        .compute = {{2001, "trainer", 512 * MIB, 0}},
        .n_compute = 1,
        .n_graphics = 0,
    },
};

static int initialized = 0;
static int step = 0;

#define DEV(handle) ((fake_device *)(handle))
#define CHECK_DEVICE(handle)                                                                   \
    do {                                                                                       \
        if (!initialized)                                                                      \
            return NVML_ERROR_UNINITIALIZED;                                                   \
        if ((handle) != (void *)&devices[0] && (handle) != (void *)&devices[1])                \
            return NVML_ERROR_INVALID_ARGUMENT;                                                \
    } while (0)

static nvmlReturn_t copy_string(const char *s, char *out, unsigned int length) {
    if (out == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, s);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) {
    initialized = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return nvmlInit_v2();
}

nvmlReturn_t nvmlShutdown(void) {
    initialized = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS:
        return "Success";
    case NVML_ERROR_NOT_SUPPORTED:
        return "Not Supported";
    case NVML_ERROR_INVALID_ARGUMENT:
        return "Invalid Argument";
    default:
        return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    return copy_string("550.54.15", version, length);
}

nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length) {
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    for (int d = 0; d < 2; d++) {
        for (unsigned int i = 0; i < devices[d].n_compute; i++)
            if (devices[d].compute[i].pid == pid)
                return copy_string(devices[d].compute[i].name, name, length);
        for (unsigned int i = 0; i < devices[d].n_graphics; i++)
            if (devices[d].graphics[i].pid == pid)
                return copy_string(devices[d].graphics[i].name, name, length);
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    step++;
    *count = 2;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device) {
    if (!initialized)
        return NVML_ERROR_UNINITIALIZED;
    if (index > 1)
        return NVML_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(void *device, char *uuid, unsigned int length) {
    CHECK_DEVICE(device);
    return copy_string(DEV(device)->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetName(void *device, char *name, unsigned int length) {
    CHECK_DEVICE(device);
    return copy_string(DEV(device)->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(void *device, nvmlUtilization_t *utilization) {
    CHECK_DEVICE(device);
    utilization->gpu = DEV(device)->util_gpu;
    utilization->memory = DEV(device)->util_mem;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(void *device, nvmlMemory_v2_t *memory) {
    CHECK_DEVICE(device);
    /* NVML_STRUCT_VERSION(Memory, 2) */
    if (memory->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_INVALID_ARGUMENT;
    memory->total = DEV(device)->mem_total;
    memory->reserved = 0;
    memory->used = DEV(device)->mem_used;
    memory->free = DEV(device)->mem_total - DEV(device)->mem_used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(void *device, unsigned int sensor, unsigned int *temp) {
    CHECK_DEVICE(device);
    if (sensor != NVML_TEMPERATURE_GPU)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (!DEV(device)->full && step >= 2)
        return NVML_ERROR_UNKNOWN;
    *temp = DEV(device)->temperature;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(void *device, unsigned int *power) {
    CHECK_DEVICE(device);
    if (!DEV(device)->full)
        return NVML_ERROR_NOT_SUPPORTED;
    *power = DEV(device)->power_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *device, unsigned int *limit) {
    CHECK_DEVICE(device);
    *limit = DEV(device)->power_limit_mw;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(void *device, unsigned long long *energy) {
    CHECK_DEVICE(device);
    if (!DEV(device)->full)
        return NVML_ERROR_NOT_SUPPORTED;
    *energy = step >= 2 ? DEV(device)->energy_mj_step2 : DEV(device)->energy_mj;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(void *device, unsigned int type, unsigned int *clock) {
    CHECK_DEVICE(device);
    switch (type) {
    case NVML_CLOCK_SM:
        *clock = DEV(device)->sm_mhz;
        return NVML_SUCCESS;
    case NVML_CLOCK_MEM:
        *clock = DEV(device)->mem_mhz;
        return NVML_SUCCESS;
    default:
        return NVML_ERROR_INVALID_ARGUMENT;
    }
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(void *device, unsigned long long *reasons) {
    CHECK_DEVICE(device);
    if (!DEV(device)->full)
        return NVML_ERROR_NOT_SUPPORTED;
    *reasons = DEV(device)->clock_events;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPcieThroughput(void *device, unsigned int counter, unsigned int *value) {
    CHECK_DEVICE(device);
    if (!DEV(device)->full)
        return NVML_ERROR_NOT_SUPPORTED;
    switch (counter) {
    case NVML_PCIE_UTIL_TX_BYTES:
        *value = DEV(device)->pcie_tx_kb;
        return NVML_SUCCESS;
    case NVML_PCIE_UTIL_RX_BYTES:
        *value = DEV(device)->pcie_rx_kb;
        return NVML_SUCCESS;
    default:
        return NVML_ERROR_INVALID_ARGUMENT;
    }
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(void *device, unsigned int error_type,
                                         unsigned int counter_type, unsigned long long *count) {
    CHECK_DEVICE(device);
    if (!DEV(device)->full)
        return NVML_ERROR_NOT_SUPPORTED;
    unsigned long long v;
    if (error_type == NVML_MEMORY_ERROR_TYPE_CORRECTED)
        v = DEV(device)->ecc_corrected;
    else if (error_type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED)
        v = DEV(device)->ecc_uncorrected;
    else
        return NVML_ERROR_INVALID_ARGUMENT;
    /* Aggregate (lifetime) counts are ten times the volatile ones, so a test can tell which
     * counter was read. */
    if (counter_type == NVML_AGGREGATE_ECC)
        v *= 10;
    else if (counter_type != NVML_VOLATILE_ECC)
        return NVML_ERROR_INVALID_ARGUMENT;
    *count = v;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetNumFans(void *device, unsigned int *num) {
    CHECK_DEVICE(device);
    if (!DEV(device)->full)
        return NVML_ERROR_NOT_SUPPORTED;
    *num = DEV(device)->num_fans;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetFanSpeed_v2(void *device, unsigned int fan, unsigned int *speed) {
    CHECK_DEVICE(device);
    if (!DEV(device)->full)
        return NVML_ERROR_NOT_SUPPORTED;
    if (fan >= DEV(device)->num_fans)
        return NVML_ERROR_INVALID_ARGUMENT;
    *speed = DEV(device)->fans[fan];
    return NVML_SUCCESS;
}

/* NVML's two-call protocol: with too small a buffer (or none), answer INSUFFICIENT_SIZE and the
 * count needed; with room, fill the buffer and set the count. */
static nvmlReturn_t list_processes(const fake_process *procs, unsigned int n, unsigned int *count,
                                   nvmlProcessInfo_t *infos) {
    unsigned int live = 0;
    for (unsigned int i = 0; i < n; i++)
        if (procs[i].gone_from_step == 0 || step < procs[i].gone_from_step)
            live++;
    if (count == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (live == 0) {
        *count = 0;
        return NVML_SUCCESS;
    }
    if (infos == NULL || *count < live) {
        *count = live;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned int j = 0;
    for (unsigned int i = 0; i < n; i++) {
        if (procs[i].gone_from_step != 0 && step >= procs[i].gone_from_step)
            continue;
        infos[j].pid = procs[i].pid;
        infos[j].usedGpuMemory = procs[i].used;
        infos[j].gpuInstanceId = 0xFFFFFFFFu;
        infos[j].computeInstanceId = 0xFFFFFFFFu;
        j++;
    }
    *count = live;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos) {
    CHECK_DEVICE(device);
    return list_processes(DEV(device)->compute, DEV(device)->n_compute, count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(void *device, unsigned int *count,
                                                      nvmlProcessInfo_t *infos) {
    CHECK_DEVICE(device);
    return list_processes(DEV(device)->graphics, DEV(device)->n_graphics, count, infos);
}
