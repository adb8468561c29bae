//! What `serve` tells a person at start besides its listeners: where the console is, and, while no API token
//! exists, the command that makes one (the console asks for a token before it shows anything).

use std::net::SocketAddr;
use std::path::Path;

use crate::store::Store;

/// The console's address for a person: the public URL when one is set, else the listener's own address
/// (loopback standing in for a listener on every interface).
pub fn console_url(http: SocketAddr, public_url: Option<&str>) -> String {
    if let Some(base) = public_url {
        return format!("{}/", base.trim_end_matches('/'));
    }
    let host = if http.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), http.port())
    } else {
        http
    };
    format!("http://{host}/")
}

/// The `tokens add` command for this data directory.
pub fn token_command(data_dir: &Path) -> String {
    let default = Path::new(crate::config::DEFAULT_DATA_DIR);
    let dir = if data_dir == default {
        String::new()
    } else {
        format!(" --data-dir {}", data_dir.display())
    };
    format!("stormwatch tokens add --name ops --role ops{dir}")
}

/// Logs the console's address and, when no token exists yet, how to make one.
pub async fn announce(http: SocketAddr, public_url: Option<&str>, data_dir: &Path, store: &Store) {
    let url = console_url(http, public_url);
    tracing::info!(console = %url, "triage console at {url}: sign in with an API token");
    match store.has_tokens_async().await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "no API token exists yet: the console and the API refuse every request until one does; make one with \
             `{}` (it prints the secret once)",
            token_command(data_dir)
        ),
        Err(error) => tracing::warn!(%error, "cannot tell whether an API token exists"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_url_is_one_a_person_can_open() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(console_url(any, None), "http://127.0.0.1:8080/");
        let local: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        assert_eq!(console_url(local, None), "http://127.0.0.1:8081/");
        assert_eq!(
            console_url(local, Some("https://stormwatch.example/")),
            "https://stormwatch.example/"
        );
        assert_eq!(
            token_command(Path::new("stormwatch-data")),
            "stormwatch tokens add --name ops --role ops"
        );
        assert_eq!(
            token_command(Path::new("/srv/sw")),
            "stormwatch tokens add --name ops --role ops --data-dir /srv/sw"
        );
    }
}
