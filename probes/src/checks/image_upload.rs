//! check_image_upload: Upload, verify and delete an image through the API.
//! Placeholder until its issue lands: reports UNKNOWN, never a fake OK.

use std::time::Duration;

use crate::cli::Probe;
use crate::{Ctx, Fail};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {}

pub struct ImageUpload;

impl Probe for ImageUpload {
    const BIN: &'static str = "check_image_upload";
    const LABEL: &'static str = "IMAGE_UPLOAD";
    const ABOUT: &'static str = "Upload, verify and delete an image through the API";
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
    type Args = Args;

    async fn run(_args: Args, _ctx: Ctx) -> Result<String, Fail> {
        Err(Fail::unknown("check_image_upload is not implemented yet"))
    }
}
