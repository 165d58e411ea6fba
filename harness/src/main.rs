use std::process::ExitCode;

use clap::Parser;

#[cfg(all(feature = "mimalloc", not(feature = "heap-count")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "heap-count")]
mod heapcount;
#[cfg(feature = "heap-count")]
#[global_allocator]
static GLOBAL: heapcount::Counting = heapcount::Counting;

fn main() -> ExitCode {
    #[cfg(feature = "mimalloc")]
    fedprobe::allocator::tune();
    #[cfg(feature = "heap-count")]
    heapcount::report_from_env();
    let cli = fedprobe::app::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fedprobe: cannot start runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match rt.block_on(fedprobe::app::main_async(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fedprobe: {e}");
            ExitCode::from(3)
        }
    }
}
