fn main() -> std::process::ExitCode {
    probes::cli::main::<probes::checks::image_upload::ImageUpload>()
}
