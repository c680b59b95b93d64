// Package hugepage places the daemon's large long-lived buffers — the
// records L1 keeps by reference — in transparent huge pages.
//
// Filling L1 is mostly first touches of memory the process has just
// obtained: every 4 KiB page costs a page fault, and on virtual machines a
// fault costs far more than the copy it interrupts. Measured on the 2-core
// VM tiercache is developed on, touching 1 GiB of fresh memory took 3.5–4.0 s
// in 4 KiB pages, 2.2–2.7 s in 2 MiB pages when the host had to back them
// and 0.07–0.08 s when it had them already (memory another process just
// freed). In the restart workload (`go run ./bench --workloads restart
// --restart-bytes 1GiB`) a refilling 1 GiB L1 was back at 90% of hot
// throughput after 3.5–3.9 s in huge pages against 8.2–8.8 s in small ones
// (the README has the 4 GiB figures, with and without the warm-up). Go
// leaves huge pages to the system's setting, which is madvise (no huge
// pages unless asked) on many distributions.
//
// Make and Clone allocate from the Go heap as make does and, for buffers of
// at least MinSize, ask the kernel (madvise MADV_HUGEPAGE) to back the 4
// MiB heap chunks the buffer lies in with huge pages, once per chunk: the Go
// runtime maps its heap in 4 MiB-aligned steps and never unmaps it, so a
// chunk's advice holds for the life of the process. Memory already touched
// when the advice comes keeps its small pages.
//
// # Caveats
//
//   - It only has an effect on Linux with transparent huge pages set to
//     "always" or "madvise" (Mode); elsewhere Make is make.
//   - With huge pages, memory the Go runtime returns to the system (its
//     scavenger) inside an advised chunk may be backed again by the
//     kernel's khugepaged, which fills a huge page when part of it is in
//     use: the resident size can then stay near its peak instead of going
//     down after a flush. It never grows past what the heap once used.
//     SetEnabled(false) (the daemon's --huge-pages no) turns advice off for
//     chunks not yet advised.
//   - GODEBUG=harddecommit=1 remaps freed heap memory, dropping the advice.
package hugepage
