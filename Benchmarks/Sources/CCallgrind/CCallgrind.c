#include "CCallgrind.h"
#include <valgrind/callgrind.h>

void herald_callgrind_begin(void) {
    CALLGRIND_ZERO_STATS;
    CALLGRIND_START_INSTRUMENTATION;
}

void herald_callgrind_end(const char *name) {
    CALLGRIND_STOP_INSTRUMENTATION;
    CALLGRIND_DUMP_STATS_AT(name);
}

int herald_running_on_valgrind(void) { return RUNNING_ON_VALGRIND ? 1 : 0; }
