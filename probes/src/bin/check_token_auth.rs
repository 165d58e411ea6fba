fn main() -> std::process::ExitCode {
    probes::cli::main::<probes::checks::token_auth::TokenAuth>()
}
