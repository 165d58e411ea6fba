fn main() -> std::process::ExitCode {
    probes::cli::main::<probes::checks::block_storage::BlockStorage>()
}
