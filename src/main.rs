fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    qis_edge::cli::main()
}

/// glibc gives each thread that allocates its own arena (up to 8 per core) and keeps what was
/// freed in it: memory freed by one thread after another allocated it (a dashboard snapshot
/// built by the core, dropped by a web connection) stays resident in both. One arena suits a
/// gateway's few threads: with 20 dashboards open on 1 000 points (`benches/dashboard.rs`) the
/// dashboard's resident cost was +11.3 MiB with two arenas and +7.3 MiB with one, at the same
/// CPU within the noise. `MALLOC_ARENA_MAX` in the environment still overrides it.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread exists; mallopt only
        // sets an allocator parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}
