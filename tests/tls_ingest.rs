//! TLS on the TCP telemetry port (issue 14): with generated certificates, TLS ingest counts every line; when a
//! client CA is set, a client without a certificate is refused; plain text to a TLS port is refused and counted;
//! beyond loopback, client certificates authenticate in place of the `AUTH` handshake, server-only TLS does not.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::*;

/// A CA, a server certificate for `localhost` and a client certificate, all signed by the CA, as PEM files.
struct Pki {
    ca: String,
    client_cert: String,
    client_key: String,
    args: Vec<String>,
}

fn pki(dir: &Path, client_ca: bool) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "stormwatch test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let signed = |names: Vec<String>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = signed(vec!["localhost".into()]);
    let (client_cert, client_key) = signed(vec!["exporter.example".into()]);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let mut toml = format!(
        "ingest_tls_cert = \"{}\"\ningest_tls_key = \"{}\"\n",
        write("server.pem", &server_cert),
        write("server.key", &server_key)
    );
    if client_ca {
        toml.push_str(&format!(
            "ingest_tls_client_ca = \"{}\"\n",
            write("ca.pem", &ca.pem())
        ));
    }
    Pki {
        ca: ca.pem(),
        client_cert,
        client_key,
        args: config_file(dir, &toml).to_vec(),
    }
}

/// A TLS client connection to `address` that trusts the test CA, with the client certificate when `present`.
fn connect(
    pki: &Pki,
    address: SocketAddr,
    present: bool,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if present {
        builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pki.client_cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let connection =
        rustls::ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap())
            .unwrap();
    let socket = std::net::TcpStream::connect(address).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    rustls::StreamOwned::new(connection, socket)
}

/// Reads until the server closes (clean or not); what it said, as text.
fn drain(stream: &mut impl Read) -> String {
    let mut said = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&said).into_owned(),
            Ok(n) => said.extend_from_slice(&buffer[..n]),
        }
    }
}

fn tcp_lines(service: &Service) -> f64 {
    metric(
        &service.get("/metrics", None).1,
        "stormwatch_ingest_lines_total{source=\"tcp\"}",
    )
    .unwrap_or(0.0)
}

fn tls_refusals(service: &Service) -> f64 {
    metric(
        &service.get("/metrics", None).1,
        "stormwatch_connections_refused_total{listener=\"tcp\",reason=\"tls\"}",
    )
    .unwrap_or(0.0)
}

#[test]
fn tls_with_client_certificates_ingests_and_refuses_clients_without_one_and_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let ops = token(dir.path(), "ops", "ops", None);
    let pki = pki(dir.path(), true);
    let mut args: Vec<&str> = pki.args.iter().map(String::as_str).collect();
    // Beyond loopback: the client certificate authenticates, so no `AUTH` line is needed.
    args.extend(["--ingest", "0.0.0.0:0"]);
    let service = Service::start(dir.path(), &args);
    let address = SocketAddr::from(([127, 0, 0, 1], service.ingest.port()));
    let lines = firewall_lines(0..10, (300, 2_000));

    // Plain text to the TLS port: refused before a line is read, and counted.
    let mut plain = std::net::TcpStream::connect(address).unwrap();
    plain
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let _ = plain.write_all(&lines);
    drain(&mut plain);
    service.wait_status("/metrics", 200, 30, |m| {
        metric(
            m,
            "stormwatch_connections_refused_total{listener=\"tcp\",reason=\"tls\"}",
        ) == Some(1.0)
    });

    // A TLS client without a certificate: the server refuses the handshake.
    let mut anonymous = connect(&pki, address, false);
    let _ = anonymous.write_all(&lines);
    let _ = anonymous.flush();
    drain(&mut anonymous);
    service.wait_status("/metrics", 200, 30, |m| {
        metric(
            m,
            "stormwatch_connections_refused_total{listener=\"tcp\",reason=\"tls\"}",
        ) == Some(2.0)
    });
    assert_eq!(
        tcp_lines(&service),
        0.0,
        "nothing from a refused connection is ingested"
    );

    // With the CA-signed client certificate every line is counted.
    let mut exporter = connect(&pki, address, true);
    exporter.write_all(&lines).unwrap();
    exporter.conn.send_close_notify();
    exporter.flush().unwrap();
    drain(&mut exporter);
    let count = lines.iter().filter(|&&b| b == b'\n').count() as f64;
    service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(count)
    });
    assert_eq!(tls_refusals(&service), 2.0);
    assert_eq!(service.json("/api/v1/malformed", &ops)["total"], 0);
    let users = service.json("/api/v1/users", &ops);
    assert!(users.to_string().contains(FIREWALLED), "{users}");
}

/// TLS without client certificates encrypts but authenticates nobody: beyond loopback the `AUTH` line is still
/// required, inside the TLS session.
#[test]
fn server_only_tls_beyond_loopback_still_needs_the_token_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let exporter_token = token(dir.path(), "exporter", "ingest", None);
    let pki = pki(dir.path(), false);
    let mut args: Vec<&str> = pki.args.iter().map(String::as_str).collect();
    args.extend(["--ingest", "0.0.0.0:0"]);
    let service = Service::start(dir.path(), &args);
    let address = SocketAddr::from(([127, 0, 0, 1], service.ingest.port()));
    let lines = firewall_lines(0..4, (300, 2_000));

    let mut no_token = connect(&pki, address, false);
    let _ = no_token.write_all(&lines);
    let _ = no_token.flush();
    assert_eq!(
        drain(&mut no_token),
        "ERR first line is not `AUTH <token>`\n"
    );
    assert_eq!(tcp_lines(&service), 0.0);

    let mut with_token = connect(&pki, address, false);
    with_token
        .write_all(format!("AUTH {exporter_token}\n").as_bytes())
        .unwrap();
    with_token.write_all(&lines).unwrap();
    with_token.conn.send_close_notify();
    with_token.flush().unwrap();
    assert_eq!(drain(&mut with_token), "OK\n");
    let count = lines.iter().filter(|&&b| b == b'\n').count() as f64;
    service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(count)
    });
}

/// A certificate file that holds no certificate is refused at start, by setting name.
#[test]
fn an_unusable_certificate_file_is_refused_at_start_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.path().join("empty.key"), "not a key\n").unwrap();
    let config = config_file(
        dir.path(),
        &format!(
            "ingest_tls_cert = \"{0}/empty.pem\"\ningest_tls_key = \"{0}/empty.key\"\n",
            dir.path().display()
        ),
    );
    let output = serve_on_loopback(dir.path())
        .args(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ingest_tls_cert"), "{stderr}");
}

/// At the connection cap the TLS port answered a plain-text `ERR too many connections`, which a TLS client reads
/// as a corrupt record. Now a connection over the cap is closed without a byte (a clean end of the handshake for
/// the client, never a reset), and counted; the connection holding the slot is untouched.
#[test]
fn over_the_cap_a_tls_port_closes_without_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), true);
    let config = std::fs::read_to_string(&pki.args[1]).unwrap();
    std::fs::write(
        &pki.args[1],
        format!("{config}ingest_max_connections = 1\n"),
    )
    .unwrap();
    let args: Vec<&str> = pki.args.iter().map(String::as_str).collect();
    let service = Service::start(dir.path(), &args);
    let lines = firewall_lines(0..4, (300, 2_000));

    let mut holder = connect(&pki, service.ingest, true);
    holder.write_all(&lines).unwrap();
    holder.flush().unwrap();
    service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_connections{listener=\"tcp\"}") == Some(1.0)
    });

    // A TLS client over the cap: the handshake ends at a clean close, not at a corrupt record or a reset.
    let mut over = connect(&pki, service.ingest, true);
    let error = over
        .write_all(&lines)
        .and_then(|()| over.flush())
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
    // A raw socket over the cap reads no plain text before the close.
    let mut raw = std::net::TcpStream::connect(service.ingest).unwrap();
    raw.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let _ = raw.write_all(b"\x16\x03\x01\x00\x05hello");
    let mut said = Vec::new();
    assert!(
        raw.read_to_end(&mut said).is_ok(),
        "closed with a FIN, not a reset"
    );
    assert_eq!(String::from_utf8_lossy(&said), "");
    service.wait_status("/metrics", 200, 30, |m| {
        metric(
            m,
            "stormwatch_connections_refused_total{listener=\"tcp\",reason=\"cap\"}",
        ) == Some(2.0)
    });

    // The connection holding the slot still ingests every line.
    holder.write_all(&lines).unwrap();
    holder.conn.send_close_notify();
    holder.flush().unwrap();
    drain(&mut holder);
    let count = 2.0 * lines.iter().filter(|&&b| b == b'\n').count() as f64;
    service.wait_status("/metrics", 200, 30, |m| {
        metric(m, "stormwatch_ingest_lines_total{source=\"tcp\"}") == Some(count)
    });
}
