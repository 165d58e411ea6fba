fn main() -> std::process::ExitCode {
    probes::cli::main::<probes::checks::object_storage::ObjectStorage>()
}
