//! `serve`: the dashboard as an operator starts it: the real binary on a free port, asked over
//! real HTTP, stopped with SIGINT as Ctrl-C would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use batchframework_diesel::BatchOperation;
use batchframework_tests::{backend_tests, TestBackend};

use crate::support::{run, Db};

backend_tests!(
    serves_the_dashboard_until_interrupted,
    refuses_an_unmigrated_database
);

/// The binary serving `url`'s database, with the address it printed.
struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(url: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("batchframework"))
            .env("DATABASE_URL", url)
            .env_remove("BATCHFRAMEWORK_TOKEN")
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        // The first line names the address; EOF (an exit) ends the read instead.
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read stdout");
        let address = line
            .strip_prefix("dashboard: http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("no address in the first line {line:?}; stderr: {stderr}")
            })
            .to_owned();
        Server { child, address }
    }

    /// `GET path` over HTTP/1.1: the status code and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).expect("connect to the dashboard");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )
        .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        (status, body.to_owned())
    }

    /// Sends SIGINT and waits (at most 10 s) for the exit code.
    fn interrupt(mut self) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the server") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the server did not stop within 10 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serves_the_dashboard_until_interrupted<B: TestBackend>() {
    let db = Db::<B>::migrated();
    let mut conn = db.connect();
    let mut op = BatchOperation::create_asynchronous("nightly-import")
        .insert(&mut conn)
        .unwrap();
    op.mark_as_running(&mut conn).unwrap();
    op.finish_failed(&mut conn, &"file not found").unwrap();

    let server = Server::start(&db.database.url, &["--read-only"]);
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_owned()));
    let (status, page) = server.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("nightly-import") && page.contains("file not found"),
        "{page}"
    );
    // Read-only: no button.
    assert!(!page.contains("<button type=\"submit\">Pause"), "{page}");
    let (status, page) = server.get(&format!("/operations/{}", op.id()));
    assert_eq!(status, 200);
    assert!(page.contains("file not found"), "{page}");
    assert_eq!(server.interrupt(), Some(0));
}

fn refuses_an_unmigrated_database<B: TestBackend>() {
    let db = Db::<B>::empty();
    let line = db
        .run(&["serve", "--bind", "127.0.0.1:0"])
        .error(1)
        .to_owned();
    assert!(line.contains("batchframework migrate"), "{line}");
}

#[test]
fn refuses_a_public_address_without_a_token() {
    let line = run(&[
        "--database-url",
        "/nonexistent.db",
        "serve",
        "--bind",
        "0.0.0.0:8080",
    ])
    .error(2)
    .to_owned();
    assert!(line.contains("--token"), "{line}");
}
