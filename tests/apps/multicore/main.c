// Core 1 on the virtual RP2040, with the SDK's own multicore calls: multicore_launch_core1 (the bootrom's FIFO
// handshake), FIFO push/pop both ways, a FIFO interrupt taken on core 1 (SIO_IRQ_PROC1), a spinlock guarding a
// counter both cores increment, and the per-core hardware divider used by both cores at once.
#include <stdio.h>
#include "hardware/irq.h"
#include "hardware/sync.h"
#include "pico/multicore.h"
#include "pico/stdlib.h"

#define ROUNDS 20
#define INCREMENTS 5000
#define DIVISIONS 3000
#define CMD_COUNT 0xC0DE0001u

static spin_lock_t *lock;
static volatile uint32_t counter;
static volatile uint32_t unlocked;  // the same increments without the lock: lost updates show real interleaving
static volatile uint32_t core1_irqs;
static volatile bool core1_count;
static volatile uint32_t div_errors[2];

static void count_and_divide(void) {
    uint core = get_core_num();
    for (uint32_t i = 0; i < INCREMENTS; i++) {
        uint32_t save = spin_lock_blocking(lock);
        uint32_t v = counter;  // a read-modify-write the other core would break without the lock
        counter = v + 1;
        spin_unlock(lock, save);
    }
    for (uint32_t i = 0; i < INCREMENTS; i++) {
        uint32_t u = unlocked;
        unlocked = u + 1;
    }
    volatile int32_t a = 1000003 + (int32_t)core * 77, b = 7 + (int32_t)core;
    for (int32_t i = 0; i < DIVISIONS; i++) {
        int32_t n = a + i, d = b + (i & 15);
        int32_t q = n / d, r = n % d;
        if (q * d + r != n || r < 0 || r >= d) div_errors[core]++;
    }
}

static void core1_fifo_irq(void) {  // runs on core 1: echo every word as 2v+1
    core1_irqs++;
    while (multicore_fifo_rvalid()) {
        uint32_t v = multicore_fifo_pop_blocking();
        if (v == CMD_COUNT) core1_count = true;
        else multicore_fifo_push_blocking(2 * v + 1);
    }
    multicore_fifo_clear_irq();
}

static void core1_main(void) {
    multicore_fifo_push_blocking(0xC1000000u | get_core_num());
    irq_set_exclusive_handler(SIO_IRQ_PROC1, core1_fifo_irq);
    irq_set_enabled(SIO_IRQ_PROC1, true);
    while (!core1_count) __wfe();
    count_and_divide();
    multicore_fifo_push_blocking(0xD0DEu);
    while (true) __wfe();
}

int main(void) {
    stdio_init_all();
    printf("MC:START core=%u\n", get_core_num());
    lock = spin_lock_instance(spin_lock_claim_unused(true));
    uint64_t t0 = time_us_64();
    multicore_reset_core1();  // PSM reset, as pico-tflmicro's dual-core kernel does before every launch
    multicore_launch_core1(core1_main);
    uint32_t hello = multicore_fifo_pop_blocking();
    uint32_t echo_ok = 0;
    for (uint32_t v = 1; v <= ROUNDS; v++) {
        multicore_fifo_push_blocking(v * 1000u);
        if (multicore_fifo_pop_blocking() == 2 * v * 1000u + 1) echo_ok++;
    }
    multicore_fifo_push_blocking(CMD_COUNT);
    count_and_divide();
    uint32_t done = multicore_fifo_pop_blocking();
    uint64_t t1 = time_us_64();
    printf("MC:RESULT hello=0x%08lx echo_ok=%lu/%d irqs=%lu count=%lu/%d unlocked=%lu div0=%lu div1=%lu done=0x%lx us=%llu\n",
           (unsigned long)hello, (unsigned long)echo_ok, ROUNDS, (unsigned long)core1_irqs,
           (unsigned long)counter, 2 * INCREMENTS, (unsigned long)unlocked, (unsigned long)div_errors[0], (unsigned long)div_errors[1],
           (unsigned long)done, (unsigned long long)(t1 - t0));
    printf("MC:DONE\n");
    while (true) tight_loop_contents();
}
