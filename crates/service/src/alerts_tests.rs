//! The Alertmanager sender against a stand-in that fails on demand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use super::*;

/// A stand-in Alertmanager: answers 500 to the first `failures` requests, then 200; sends each accepted body.
fn flaky_alertmanager(failures: usize) -> (String, std::sync::mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().map_while(Result::ok).enumerate() {
            let mut reader = BufReader::new(stream);
            let (mut length, mut line) = (0, String::new());
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let status = if n < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = reader.get_mut().write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            if n >= failures
                && let Ok(value) = serde_json::from_slice(&body)
            {
                let _ = sender.send(value);
            }
        }
    });
    (url, receiver)
}

/// Found by the security review: a resolve push that failed was never retried, so the page stayed up.
#[test]
fn a_resolution_alertmanager_missed_is_sent_again() {
    let (url, accepted) = flaky_alertmanager(3);
    let (notify, input) = crossbeam::channel::bounded(4);
    std::thread::spawn(move || {
        run(
            &url,
            None,
            &input,
            Duration::from_secs(3_600),
            Duration::from_millis(100),
        )
    });
    let record = crate::store::tests::record("inc-1", "90-B3-D5-1F-30-01-00-07", 0, Some(60_000));
    notify
        .send(AlertMessage {
            record,
            resolved: true,
        })
        .unwrap();
    let body = accepted
        .recv_timeout(Duration::from_secs(30))
        .expect("the resolution is retried until taken");
    assert_eq!(body[0]["labels"]["incident"], "inc-1");
    assert!(body[0]["endsAt"].is_string(), "{body}");
}
