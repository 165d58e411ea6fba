fn main() -> std::process::ExitCode {
    probes::cli::main::<probes::checks::certificates::Certificates>()
}
