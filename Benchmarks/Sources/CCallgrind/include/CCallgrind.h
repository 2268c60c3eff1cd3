// Callgrind's client requests as functions, so Swift can bracket a measured loop. Outside valgrind
// they do nothing.
#pragma once
/// Zeroes the counters and starts counting (run valgrind with --instr-atstart=no).
void herald_callgrind_begin(void);
/// Stops counting and writes the counts so far as one dump labelled `name`.
void herald_callgrind_end(const char *name);
int herald_running_on_valgrind(void);
