fn main() -> std::process::ExitCode {
    probes::cli::main::<probes::checks::network::NetworkProbe>()
}
