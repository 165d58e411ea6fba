//! check_glue against a hostile LDAP BDII: a scripted server that reads the
//! probe's search and answers it with what a broken or malicious BDII could
//! send (entries without end, one message claiming 2 GiB, BER that the LDAP
//! library's decoder cannot take, entries of the wrong types, garbage, a
//! reset). Every run must end as a CRITICAL result naming the GLUE stage and
//! what came back, under 16 KB, within -t, having read a bounded amount.

use std::time::{Duration, Instant};

use probes::checks::glue::Glue;
use probes::clients::ldap::{MAX_ANSWER, MAX_ENTRIES};
use probes::model::{ProbeResult, Status};
use probes::probe::run_args;
use probes::render::nagios;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug)]
enum Answer {
    EndlessEntries,
    HugeMessage,
    EmptyMessage,
    WrongTypes,
    NotASequence,
    Garbage,
    Reset,
}

/// A BER element: tag, definite length, body.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    if body.len() < 128 {
        v.push(body.len() as u8);
    } else {
        v.push(0x84);
        v.extend((body.len() as u32).to_be_bytes());
    }
    v.extend(body);
    v
}

/// An LDAPMessage with the request's messageID (its whole INTEGER element).
fn message(id: &[u8], op: &[u8]) -> Vec<u8> {
    tlv(0x30, &[id, op].concat())
}

/// A SearchResultEntry with one attribute; `vals_tag` 0x04 is right, any
/// other tag is a value of the wrong type; `list_tag` 0x30 is right, 0x04
/// makes the attribute list a string.
fn entry(id: &[u8], n: u64, vals_tag: u8, list_tag: u8) -> Vec<u8> {
    let attr = tlv(
        0x30,
        &[
            tlv(0x04, b"objectClass"),
            tlv(0x31, &tlv(vals_tag, b"\x01")),
        ]
        .concat(),
    );
    let body = [
        tlv(0x04, format!("GLUE2ServiceID=s{n},o=glue").as_bytes()),
        tlv(list_tag, &attr),
    ]
    .concat();
    message(id, &tlv(0x64, &body))
}

fn done(id: &[u8]) -> Vec<u8> {
    message(
        id,
        &tlv(
            0x65,
            &[tlv(0x0a, &[0]), tlv(0x04, b""), tlv(0x04, b"")].concat(),
        ),
    )
}

/// Read the probe's first LDAP message; its messageID element.
async fn read_request(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..100 {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        // 30 LEN 02 IDLEN ID...: short or long form length.
        if buf.len() < 2 || buf[0] != 0x30 {
            continue;
        }
        let at = if buf[1] < 0x80 {
            2
        } else {
            2 + usize::from(buf[1] & 0x7f)
        };
        if buf.len() > at + 2 && buf[at] == 0x02 {
            let end = at + 2 + usize::from(buf[at + 1]);
            if buf.len() >= end {
                return Some(buf[at..end].to_vec());
            }
        }
    }
    None
}

async fn hostile(mut s: TcpStream, a: Answer) {
    let Some(id) = read_request(&mut s).await else {
        return;
    };
    match a {
        Answer::EndlessEntries => {
            // A fresh DN each time, in batches, until the probe hangs up.
            for batch in 0u64.. {
                let mut out = Vec::new();
                for i in 0..1000 {
                    out.extend(entry(&id, batch * 1000 + i, 0x04, 0x30));
                }
                if s.write_all(&out).await.is_err() || batch > 10_000_000 {
                    return;
                }
            }
        }
        Answer::HugeMessage => {
            // A message claiming 2 GiB, then zeros until the probe hangs up.
            let mut head = vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff];
            head.extend(&id);
            if s.write_all(&head).await.is_err() {
                return;
            }
            let zeros = vec![0u8; 64 * 1024];
            for _ in 0..1_000_000 {
                if s.write_all(&zeros).await.is_err() {
                    return;
                }
            }
        }
        Answer::EmptyMessage => {
            let _ = s.write_all(&[0x30, 0x00]).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Answer::WrongTypes | Answer::NotASequence => {
            let mut out = match a {
                Answer::WrongTypes => entry(&id, 1, 0x02, 0x30),
                _ => entry(&id, 1, 0x04, 0x04),
            };
            out.extend(done(&id));
            let _ = s.write_all(&out).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Answer::Garbage => {
            // An HTTP server on the LDAP port: it answers and hangs up.
            let _ = s
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
        Answer::Reset => {
            // A zero linger does not block on drop; it makes the close a reset.
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        }
    }
}

async fn bdii(a: Answer) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(hostile(s, a));
        }
    });
    port
}

const T: u64 = 20;

async fn run(port: u16) -> (ProbeResult, Duration) {
    let t0 = Instant::now();
    let url = format!("ldap://127.0.0.1:{port}");
    let t = T.to_string();
    let r = run_args::<Glue, _>(&["--ldap-url", url.as_str(), "-t", t.as_str()]).await;
    (r, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_survives_a_hostile_ldap_bdii() {
    let cases = [
        (
            Answer::EndlessEntries,
            format!("more than {MAX_ENTRIES} entries"),
        ),
        (
            Answer::HugeMessage,
            format!("more than {} MiB", MAX_ANSWER >> 20),
        ),
        (Answer::EmptyMessage, "search failed".to_string()),
        // Values of the wrong type are read as text: an entry of no GLUE class.
        (
            Answer::WrongTypes,
            "none of a GLUE 2.1 cloud class".to_string(),
        ),
        (Answer::NotASequence, "malformed LDAP entry".to_string()),
        (
            Answer::Garbage,
            "the server closed the connection".to_string(),
        ),
        (Answer::Reset, "connection reset".to_string()),
    ];
    for (a, says) in cases {
        let port = bdii(a).await;
        let (r, took) = run(port).await;
        let out = nagios::render(&r, 3);
        eprintln!("{a:?} in {took:?}: {}", r.summary);
        assert_eq!(r.status, Status::Critical, "{a:?}: {out}");
        assert!(r.summary.contains("GLUE-01"), "{a:?}: {}", r.summary);
        assert!(
            r.summary.contains("ldap://127.0.0.1:"),
            "{a:?}: {}",
            r.summary
        );
        assert!(r.summary.contains(&says), "{a:?}: {}", r.summary);
        assert!(out.len() <= nagios::MAX_OUTPUT, "{a:?}: {}", out.len());
        // Within -t; the summary above says it was what came back that ended it.
        assert!(took < Duration::from_secs(T), "{a:?}: {took:?}");
    }
}
