// mimalloc instead of glibc malloc: the ingest path allocates and frees
// small buffers on one thread and drops them on another (the WAL sync
// thread answers), where glibc's arenas showed in profiles
// (malloc_consolidate, unlink_chunk). examples/ingest_bench uses the same.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    callvault::cli::main()
}
