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
    let out = rt.block_on(fedprobe::app::main_async(cli));
    // Not a plain drop, which waits for every blocking thread: a probe read
    // stuck in a file that never answers (a FIFO, a hung mount) was given up
    // at its deadline, and must not hold the process's exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    match out {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fedprobe: {e}");
            ExitCode::from(3)
        }
    }
}
