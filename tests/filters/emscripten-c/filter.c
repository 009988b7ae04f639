// A proxy-wasm filter in plain C, built by the end-to-end tests with
// Emscripten (`emcc -s STANDALONE_WASM -s ALLOW_MEMORY_GROWTH`, as the
// proxy-wasm C++ SDK builds filters), so the module imports
// `env.emscripten_notify_memory_growth` like every C++ filter does.
//
// On the request headers it allocates more memory than the module starts
// with (malloc grows the memory and notifies the host), checks
// pthread_equal, and answers with a response header `x-emscripten: grown`.

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

IMPORT(proxy_log) int proxy_log(int level, const char *message, size_t size);
IMPORT(proxy_add_header_map_value)
int proxy_add_header_map_value(int map, const char *key, size_t key_size, const char *value,
                               size_t value_size);

enum { LOG_INFO = 2, RESPONSE_HEADERS = 2, CONTINUE = 0 };
static int grown;

EXPORT(proxy_abi_version_0_2_1) void abi_version(void) {}

EXPORT(proxy_on_memory_allocate) void *on_memory_allocate(size_t size) { return malloc(size); }

EXPORT(proxy_on_context_create) void on_context_create(uint32_t context, uint32_t root) {}

EXPORT(proxy_on_request_headers)
uint32_t on_request_headers(uint32_t context, uint32_t headers, uint32_t end_of_stream) {
    size_t size = 4 << 20;
    char *block = malloc(size);
    if (block != NULL) {
        memset(block, 1, size);
        grown = block[size - 1] == 1;
        free(block);
    }
    const char *message = pthread_equal(pthread_self(), pthread_self()) ? "emscripten filter ran"
                                                                        : "pthread_equal is wrong";
    proxy_log(LOG_INFO, message, strlen(message));
    return CONTINUE;
}

EXPORT(proxy_on_response_headers)
uint32_t on_response_headers(uint32_t context, uint32_t headers, uint32_t end_of_stream) {
    const char *value = grown ? "grown" : "not-grown";
    proxy_add_header_map_value(RESPONSE_HEADERS, "x-emscripten", 12, value, strlen(value));
    return CONTINUE;
}
