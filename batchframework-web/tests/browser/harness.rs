//! The browser tests' harness: finds Chromium and its chromedriver, starts the driver on a free
//! loopback port and stops it (and every browser it started) when done, opens a WebDriver session
//! on headless Chromium, serves an axum app on a real loopback listener, and gives the tests
//! deadline-bound waits, screenshots and the browser's console log.
//!
//! Why a real browser at all: the dashboard's HTML is only half of it; that its links resolve
//! under the prefix it is mounted at, that its forms post what the handlers read (CSRF token
//! included) and that a redirect lands on a page showing the outcome are things only a browser
//! following them proves.
//!
//! Missing Chromium or chromedriver skips the tests with a `SKIPPED:` line on stderr, except under
//! `CI=true`, where it fails them: CI must not pass by testing nothing.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// How long any one wait (the driver's readiness, an element, a condition) may take before the
/// test fails. Generous: the suite runs several browsers at once on a two-core machine.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);

/// How often a wait checks its condition again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The browser's command line: headless, without the sandbox (tests run as root in CI), no GPU,
/// /tmp instead of a small /dev/shm in containers, and a fixed window so screenshots compare.
const CHROME_ARGS: [&str; 5] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// What to install, named in the skip and failure messages.
const INSTALL_HINT: &str = "install Debian's chromium and chromium-driver packages \
    (`apt-get install chromium chromium-driver`; scripts/test does it when run as root), or set \
    CHROME and CHROMEDRIVER to a Chromium binary and the chromedriver of the same version";

/// Whether this is a CI run (`CI` is `true`, `1` or `yes`), where a missing browser fails.
fn ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// The path in `variable`, or `default` when it is unset or empty.
fn path_from_env(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The browser and its driver on this machine.
struct Tools {
    chromedriver: PathBuf,
    chrome: PathBuf,
}

/// Finds chromedriver (`CHROMEDRIVER`, else `/usr/bin/chromedriver`) and Chromium (`CHROME`, else
/// `/usr/bin/chromium`). When one is missing: panics under CI, else says SKIPPED and gives `None`.
fn tools() -> Option<Tools> {
    let tools = Tools {
        chromedriver: path_from_env("CHROMEDRIVER", "/usr/bin/chromedriver"),
        chrome: path_from_env("CHROME", "/usr/bin/chromium"),
    };
    let missing: Vec<String> = [
        ("chromedriver (CHROMEDRIVER)", &tools.chromedriver),
        ("Chromium (CHROME)", &tools.chrome),
    ]
    .into_iter()
    .filter(|(_, path)| !path.is_file())
    .map(|(what, path)| format!("{what} not found at {}", path.display()))
    .collect();
    if missing.is_empty() {
        return Some(tools);
    }
    let message = format!("{}; {INSTALL_HINT}", missing.join(", "));
    if ci() {
        panic!("CI=true and the browser tests cannot run: {message}");
    }
    eprintln!("SKIPPED: browser test not run: {message}");
    None
}

/// A loopback port nothing listens on right now (the OS picks it; the listener is closed again
/// so that chromedriver can bind it).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind a free loopback port")
}

/// A bodiless `GET` to chromedriver (`/status`, `/shutdown`): the response body parsed as JSON, or
/// `None` when it does not answer (yet) or answers something else. HTTP/1.1 with the body read by
/// its `Content-Length`: chromedriver drops HTTP/1.0 requests, and keeps the connection open
/// after its answer even when asked to close it.
fn driver_request(port: u16, path: &str) -> Option<Value> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        let read = stream.read(&mut buffer).ok()?;
        if read == 0 {
            return None;
        }
        response.extend_from_slice(&buffer[..read]);
        let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 200") {
            return None;
        }
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))?
            .trim()
            .parse()
            .ok()?;
        let body = &response[head_end + 4..];
        if body.len() >= length {
            return serde_json::from_slice(&body[..length]).ok();
        }
    }
}

/// A running chromedriver; dropping it shuts it down, with every browser it started, and reaps it.
struct Driver {
    child: Child,
    port: u16,
    /// Its and its browsers' TMPDIR (profiles, singleton sockets), removed on drop: what a
    /// browser that did not exit cleanly leaves behind goes with it.
    temp: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a free loopback port and waits until its `/status` says it is
    /// ready. Another process may take the port between our probe and chromedriver's bind: then
    /// chromedriver exits at once, and it is started again on another port.
    fn start(chromedriver: &Path) -> Driver {
        for _ in 0..3 {
            let port = free_port();
            let temp =
                std::env::temp_dir().join(format!("bf-chromedriver-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&temp)
                .unwrap_or_else(|e| panic!("create {}: {e}", temp.display()));
            let child = Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .env("TMPDIR", &temp)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, which its browsers join: Drop can end them all.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
            let mut driver = Driver { child, port, temp };
            let deadline = Instant::now() + DEADLINE;
            loop {
                if let Some(status) = driver.child.try_wait().expect("poll chromedriver") {
                    eprintln!("chromedriver on port {port} exited at start ({status}); retrying");
                    break;
                }
                let ready = driver_request(port, "/status")
                    .is_some_and(|status| status["value"]["ready"] == json!(true));
                if ready {
                    return driver;
                }
                assert!(
                    Instant::now() < deadline,
                    "chromedriver on port {port} was not ready within {DEADLINE:?}"
                );
                std::thread::sleep(POLL); // the poll interval of a readiness wait
            }
        }
        panic!(
            "chromedriver exited at start three times ({})",
            chromedriver.display()
        );
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Sends `signal` to every process of the process group `group` (`kill` from procps: std has
/// no killpg); whether one of them got it.
fn signal_group(signal: &str, group: u32) -> bool {
    Command::new("kill")
        .args([signal, "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl Drop for Driver {
    fn drop(&mut self) {
        // `/shutdown` quits the browsers of sessions still open (a test that failed before it
        // could close its own), then the driver. Its browsers, in its process group, may take
        // a moment longer: wait for the group to empty, and kill what is left at the deadline.
        // (A process group's id is not given to a new process while the group has members.)
        let group = self.child.id();
        if let Ok(None) = self.child.try_wait() {
            let _ = driver_request(self.port, "/shutdown");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while (matches!(self.child.try_wait(), Ok(None)) || signal_group("-0", group))
            && Instant::now() < deadline
        {
            std::thread::sleep(POLL);
        }
        if Instant::now() >= deadline {
            signal_group("-KILL", group);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

/// A browser to test with: its driver, a runtime for the WebDriver client and the servers under
/// test. Made by [`Browser::launch`]; [`Browser::run`] runs a test in a fresh session.
pub(crate) struct Browser {
    // Dropped in this order: the runtime first (it stops the servers), then the driver.
    runtime: tokio::runtime::Runtime,
    driver: Driver,
    chrome: PathBuf,
}

impl Browser {
    /// Starts chromedriver; `None` (after a `SKIPPED:` line) when there is no browser to test
    /// with outside CI. A test returns at once on `None`.
    pub(crate) fn launch() -> Option<Browser> {
        let tools = tools()?;
        let driver = Driver::start(&tools.chromedriver);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("build a tokio runtime");
        Some(Browser {
            runtime,
            driver,
            chrome: tools.chrome,
        })
    }

    /// Serves `app` on a new loopback listener for as long as the browser lives, and returns its
    /// origin (`http://127.0.0.1:PORT`).
    pub(crate) fn serve(&self, app: axum::Router) -> String {
        let listener = self.runtime.block_on(async {
            tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind the app's listener")
        });
        let address = listener.local_addr().expect("the listener's address");
        self.runtime.spawn(async move {
            axum::serve(listener, app).await.expect("serve the app");
        });
        format!("http://{address}")
    }

    /// Opens a WebDriver session on headless Chromium, runs `test` with it, checks the browser
    /// logged no script error, and closes the session, also when `test` panicked (the panic is
    /// then raised again, after the close).
    ///
    /// `test` runs as a task on the multi-threaded runtime: blocking calls (database checks)
    /// belong in [`blocking`].
    pub(crate) fn run<F, Fut>(&self, test: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.runtime.block_on(async {
            let client = self.session().await;
            let outcome = tokio::spawn(test(client.clone())).await;
            let errors = match &outcome {
                Ok(()) => Some(script_errors(&client).await),
                Err(_) => None,
            };
            let closed = client.close().await;
            match outcome {
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("the test task did not finish: {e}"),
                Ok(()) => {}
            }
            let errors = errors.unwrap_or_default();
            assert!(
                errors.is_empty(),
                "the browser logged script errors:\n{}",
                errors.join("\n")
            );
            closed.expect("close the WebDriver session");
        });
    }

    /// A new session on headless Chromium, keeping the browser's console log for
    /// [`script_errors`].
    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": self.chrome, "args": CHROME_ARGS }),
        );
        capabilities.insert("goog:loggingPrefs".to_owned(), json!({ "browser": "ALL" }));
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.driver.url())
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"))
    }
}

/// Runs blocking code (a database check) from a test task without stalling the runtime's other
/// tasks (the server under test).
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// chromedriver's log command (`POST /session/{id}/se/log`, outside the W3C standard): the
/// entries of one log since the last call.
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

/// The SEVERE entries of the browser's console log since the last call: uncaught exceptions,
/// `console.error`, and resources that failed to load.
pub(crate) async fn script_errors(client: &Client) -> Vec<String> {
    let entries = client
        .issue_cmd(GetLog("browser"))
        .await
        .expect("read the browser log");
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == json!("SEVERE"))
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Waits (up to [`DEADLINE`]) for an element matching `css`, and returns it.
pub(crate) async fn find(client: &Client, css: &str) -> Element {
    match client
        .wait()
        .at_most(DEADLINE)
        .every(POLL)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => panic!(
            "no `{css}` within {DEADLINE:?} ({e}) on {}",
            describe(client).await
        ),
    }
}

/// Waits (up to [`DEADLINE`]) until `check` gives `Some`, checking every [`POLL`]; `what` names
/// the condition in the failure. Errors from the browser count as "not yet" (the last one is in
/// the failure): an element not there yet, or gone stale because the page's refresh replaced
/// the part of the page it was in, or because the page changed.
pub(crate) async fn until<T, F, Fut>(client: &Client, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, CmdError>>,
{
    let deadline = Instant::now() + DEADLINE;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return value,
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            let last_error = last_error
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            panic!(
                "{what}: not the case within {DEADLINE:?}{last_error} on {}",
                describe(client).await
            );
        }
        tokio::time::sleep(POLL).await; // the poll interval of a condition wait
    }
}

/// The visible text of the element matching `css` (trimmed), once there is one.
pub(crate) async fn text(client: &Client, css: &str) -> String {
    until(client, &format!("`{css}` has a text"), || async {
        let text = client.find(Locator::Css(css)).await?.text().await?;
        Ok(Some(text.trim().to_owned()))
    })
    .await
}

/// The attribute `name` of the element matching `css` (`None` when it has none), once there is
/// such an element.
pub(crate) async fn attr(client: &Client, css: &str, name: &str) -> Option<String> {
    until(client, &format!("`{css}` can be read"), || async {
        Ok(Some(
            client.find(Locator::Css(css)).await?.attr(name).await?,
        ))
    })
    .await
}

/// Waits until the text of `css` is `expected` (trimmed).
pub(crate) async fn until_text(client: &Client, css: &str, expected: &str) {
    until(client, &format!("`{css}` reads {expected:?}"), || async {
        let text = client.find(Locator::Css(css)).await?.text().await?;
        Ok((text.trim() == expected).then_some(()))
    })
    .await;
}

/// Clicks the element matching `css` once it is there; found again if the page's refresh
/// replaced it between the finding and the click.
pub(crate) async fn press(client: &Client, css: &str) {
    until(client, &format!("`{css}` can be clicked"), || async {
        client.find(Locator::Css(css)).await?.click().await?;
        Ok(Some(()))
    })
    .await;
}

/// The page's URL and the start of its text, for failure messages.
pub(crate) async fn describe(client: &Client) -> String {
    let url = client
        .current_url()
        .await
        .map_or_else(|e| format!("<no url: {e}>"), |url| url.to_string());
    let text = client
        .execute("return document.documentElement.innerText", Vec::new())
        .await
        .map_or_else(
            |e| format!("<no text: {e}>"),
            |text| text.as_str().unwrap_or_default().to_owned(),
        );
    let cut = text.char_indices().nth(2000).map_or(text.len(), |(i, _)| i);
    format!("{url}, whose text begins:\n{}", &text[..cut])
}

/// Saves a screenshot of the window to `{CARGO_TARGET_TMPDIR}/screenshots/{name}.png`, and
/// returns its path.
pub(crate) async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("take a screenshot");
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&directory).expect("create the screenshot directory");
    let path = directory.join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}
