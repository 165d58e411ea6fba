fn main() -> std::process::ExitCode {
    probes::cli::main::<probes::checks::vm_lifecycle::VmLifecycle>()
}
