//! Images on OpenNebula. oned's API takes no image bytes: `one.image.allocate`
//! names a PATH (a file on the frontend, or a URL) that the datastore driver
//! copies. So the probe serves the bytes itself: `create_image` opens a
//! listener and allocates the image with PATH = that URL, `upload` hands
//! the stream to the one GET the driver makes. Nothing in the API reads an
//! image's bytes back, so `download` cannot be done (a WARNING).

use std::future::poll_fn;
use std::pin::Pin;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{states, tag_lines, OpenNebula};
use crate::backend::{ImageState, ImageStore, Import, NewImage, Sink, Transfer};
use crate::clients::opennebula::{self as one, int, int_at, string, text_at};
use crate::fail::Fail;
use crate::http::BodyStream;

/// A listener waiting for oned to fetch one image.
pub struct Serving {
    listener: TcpListener,
    path: String,
}

/// Longest request head we read from the fetcher.
const HEAD_MAX: usize = 16 * 1024;

impl ImageStore for OpenNebula {
    async fn create_image(&self, spec: &NewImage) -> Result<ImageState, Fail> {
        let listener = TcpListener::bind(&self.args.serve).await.map_err(|e| {
            Fail::unknown(format!(
                "cannot listen on --opennebula-serve {}: {e}",
                self.args.serve
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Fail::unknown(format!("listener address: {e}")))?;
        let path = format!("/{}.img", spec.name);
        let url = format!("http://{addr}{path}");
        let t = format!(
            "NAME={}\nTYPE=\"OS\"\nPATH={}\nFORMAT=\"raw\"\n{}",
            one::quote(&spec.name),
            one::quote(&url),
            tag_lines(&spec.properties)
        );
        let id = self
            .one
            .call_id(
                "one.image.allocate",
                vec![
                    string(&t),
                    int(i64::from(self.args.datastore)),
                    one::Value::Boolean(false),
                ],
            )
            .await?
            .to_string();
        self.serving
            .lock()
            .await
            .insert(id.clone(), Serving { listener, path });
        Ok(ImageState {
            id,
            phase: crate::backend::ImagePhase::Queued,
            status_text: format!("allocated, PATH {url}"),
            ..ImageState::default()
        })
    }

    async fn upload(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        let Some(s) = self.serving.lock().await.remove(id) else {
            return Err(Fail::unknown(format!(
                "image {id} was not created by this run"
            )));
        };
        let left = self.one.http().deadline().remaining();
        let r = tokio::time::timeout(left, serve_one(s, body)).await;
        match r {
            Ok(r) => r,
            Err(_) => Err(Fail::timeout(format!(
                "oned's datastore driver did not fetch image {id}'s PATH before the deadline"
            ))),
        }
    }

    async fn import_support(&self) -> Result<Import, Fail> {
        Ok(Import::NotOffered {
            wanted: "staged import".into(),
            advertised: vec!["PATH/URL fetched by the datastore driver".into()],
        })
    }

    async fn stage_and_import(&self, id: &str, body: BodyStream) -> Result<Transfer, Fail> {
        self.upload(id, body).await
    }

    async fn image(&self, id: &str) -> Result<Option<ImageState>, Fail> {
        let Some(doc) = self.image_doc(id).await? else {
            return Ok(None);
        };
        let d = doc.parse("one.image.info")?;
        let i = d.root_element();
        let state = int_at(i, "STATE").unwrap_or(-1);
        let mut text = states::image_text(state);
        if let Some(e) = text_at(i, "TEMPLATE/ERROR").filter(|e| !e.is_empty()) {
            text.push_str(&format!(": {}", crate::text::one_line(e, 200)));
        }
        Ok(Some(ImageState {
            id: id.to_string(),
            phase: states::image_phase(state),
            status_text: text,
            // SIZE is in MB: not comparable to the bytes sent
            size: None,
            checksum: None,
            hash_algo: None,
            hash_value: None,
        }))
    }

    async fn download(&self, id: &str, _sink: Sink<'_>) -> Result<u64, Fail> {
        Err(Fail::warning(format!(
            "image {id}: OpenNebula's XML-RPC API has no call that returns an image's bytes; \
             the upload is checked by oned's image state only"
        )))
    }

    async fn delete_image(&self, id: &str) -> Result<bool, Fail> {
        self.serving.lock().await.remove(id);
        self.delete_image_id(id).await
    }
}

/// Answer one GET for `s.path` with the body; other requests get 404 and
/// the wait goes on.
async fn serve_one(s: Serving, mut body: BodyStream) -> Result<Transfer, Fail> {
    loop {
        let (mut conn, _) = s
            .listener
            .accept()
            .await
            .map_err(|e| Fail::critical(format!("accepting oned's fetch: {e}")))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < HEAD_MAX {
            let n = conn
                .read(&mut buf)
                .await
                .map_err(|e| Fail::critical(format!("reading oned's fetch: {e}")))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let mut words = line.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if target != s.path || !(method == "GET" || method == "HEAD") {
            let _ = conn
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
            continue;
        }
        let hdr = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let io = |e: std::io::Error| Fail::critical(format!("sending the image to oned: {e}"));
        conn.write_all(hdr.as_bytes()).await.map_err(io)?;
        if method == "HEAD" {
            continue;
        }
        loop {
            let frame = poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await;
            match frame {
                None => break,
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        conn.write_all(&data).await.map_err(io)?;
                    }
                }
                Some(Err(e)) => return Err(io(e)),
            }
        }
        conn.shutdown().await.map_err(io)?;
        return Ok(Transfer::Done);
    }
}
