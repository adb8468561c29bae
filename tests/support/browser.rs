//! A real headless Chromium for the console test, driven over WebDriver: finds Debian's `chromium` and
//! `chromedriver`, starts chromedriver on an ephemeral loopback port in a process group of its own (so the browser
//! it starts goes with it), opens a fantoccini session, and offers the waits and screenshots the test needs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// How long a wait on the page may take before the test fails (a bound, not a measurement: CI machines are slow).
pub const PATIENCE: Duration = Duration::from_secs(45);

pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// The browser and its driver. The tests that call this are `#[ignore]`d, so they run only when asked
/// (`--include-ignored`, as `scripts/test-all` does); asked and without a browser, they fail: a skipped test would
/// report a pass it did not run.
pub fn tools() -> Tools {
    let find = |variable: &str, default: &str| {
        std::env::var_os(variable)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let tools = Tools {
        chromium: find("STORMWATCH_CHROMIUM", "/usr/bin/chromium"),
        chromedriver: find("STORMWATCH_CHROMEDRIVER", "/usr/bin/chromedriver"),
    };
    let missing: Vec<String> = [&tools.chromium, &tools.chromedriver]
        .into_iter()
        .filter(|path| !path.is_file())
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "{} not found: install Debian's browser with `apt-get install -y --no-install-recommends chromium \
         chromium-driver` (scripts/test-all does), or point STORMWATCH_CHROMIUM / STORMWATCH_CHROMEDRIVER at them",
        missing.join(" and ")
    );
    tools
}

/// Where the test's screenshots go: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("create the screenshot folder");
    dir
}

pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// chromedriver, stopped with everything in its process group (a Chromium whose session never closed) on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a `width` x `height` window (a laptop screen).
    pub async fn start(tools: &Tools, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut driver = Driver(
            Command::new(&tools.chromedriver)
                .arg("--port=0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver"),
        );
        let port = driver_port(&mut driver.0);
        let arguments = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": tools.chromium, "args": arguments }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("open a WebDriver session in Chromium");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Ends the session (Chromium exits); dropping the `Browser` then stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// Waits until the element at `css` exists and its text passes `check`; returns the text.
    pub async fn text_where(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("(no such element)");
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if check(&text) {
                    return text;
                }
                last = text;
            }
            assert!(
                Instant::now() < deadline,
                "waited on `{css}`; its text was: {last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until at least `count` elements match `css`; returns how many do.
    pub async fn count_at_least(&self, css: &str, count: usize) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self
                .client
                .find_all(Locator::Css(css))
                .await
                .map_or(0, |all| all.len());
            if found >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {count} of `{css}`, found {found}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks the element at `css`, finding it again if the page redrew it between finding and clicking (the
    /// console redraws parts of itself on every poll).
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let error = match self.client.find(Locator::Css(css)).await {
                Ok(element) => match element.click().await {
                    Ok(()) => return,
                    Err(error) => error.to_string(),
                },
                Err(error) => error.to_string(),
            };
            assert!(Instant::now() < deadline, "cannot click `{css}`: {error}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Replaces the text of the input at `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to fill: {e}"));
        input.clear().await.expect("clear the input");
        input.send_keys(text).await.expect("type into the input");
    }

    /// Picks the option with `value` in the select at `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` to select in: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("no option `{value}` in `{css}`: {e}"));
    }

    /// Runs `script` in the page and returns its value.
    pub async fn run(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    pub async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(css)).await.ok()?;
        element.attr(name).await.ok().flatten()
    }

    /// Waits until the element at `css` has attribute `name` and it passes `check`; returns it. A chart drawn
    /// while the service is still catching up after a restart is redrawn on the next refresh.
    pub async fn attribute_where(
        &self,
        css: &str,
        name: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::from("(no such element or attribute)");
        loop {
            if let Some(value) = self.attribute(css, name).await {
                if check(&value) {
                    return value;
                }
                last = value;
            }
            assert!(
                Instant::now() < deadline,
                "waited on `{css}` [{name}]; it was: {last:.200}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves the whole page, not just the window, by growing the window to the page's height for one shot.
    pub async fn screenshot_whole_page(&self, name: &str) -> PathBuf {
        let (width, height) = self.client.get_window_size().await.expect("window size");
        let page = self
            .run("return document.documentElement.scrollHeight - window.innerHeight")
            .await
            .as_u64()
            .unwrap_or(0);
        let taller = u32::try_from(height + page).unwrap_or(u32::MAX);
        let width = u32::try_from(width).unwrap_or(1440);
        self.client
            .set_window_size(width, taller)
            .await
            .expect("grow the window");
        let path = self.screenshot(name).await;
        self.client
            .set_window_size(width, u32::try_from(height).unwrap_or(1000))
            .await
            .expect("restore the window");
        path
    }

    /// Saves what the window shows as `name` in the screenshot folder and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("take a screenshot");
        let path = screenshot_dir().join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

/// Reads chromedriver's "started successfully on port N" line, then keeps draining its output.
fn driver_port(driver: &mut Child) -> u16 {
    let stdout = driver.stdout.take().expect("piped chromedriver stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The first line says "on port 0" (as asked); the real port comes with "started successfully".
            let port = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim().trim_end_matches('.').parse::<u16>().ok());
            if let Some(port) = port {
                let _ = sender.send(port);
            }
        }
    });
    receiver
        .recv_timeout(Duration::from_secs(30))
        .expect("chromedriver reports the port it listens on")
}
