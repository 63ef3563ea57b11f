//! End to end in real terminals: the real `papo` binary in tmux sessions against a real
//! server, driven by keystrokes (send-keys) and checked by what is on screen (capture-pane).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use papo::known_servers::KnownServers;
use papo_protocol::Fingerprint;
use papo_server::testing::{TestServer, PASSWORD};

/// One tmux server of our own, so the test never touches the user's sessions.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// A tmux server for one test (`tag` keeps tests that run at once apart).
    /// A tmux server of this test's own; `None`, to skip the test, if tmux is not installed
    /// (never in CI, which must have it).
    fn new(tag: &str) -> Option<Self> {
        let socket = format!("papo-e2e-{}-{tag}", std::process::id());
        let installed = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
        if !installed {
            assert!(std::env::var_os("CI").is_none(), "tmux is required in CI (apt-get install tmux)");
            eprintln!("skipped: tmux is not installed");
            return None;
        }
        Some(Self { socket })
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("run tmux");
        assert!(output.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Opens `papo SERVER` in a new 80×24 session with its own home directory. When papo
    /// exits, the shell around it prints its exit status on the restored terminal.
    fn open(&self, session: &str, server: &str, home: &Path) {
        let command = format!(
            "env HOME={home} XDG_CONFIG_HOME={home}/config XDG_STATE_HOME={home}/state XDG_DATA_HOME={home}/data TERM=xterm-256color LANG=C.UTF-8 {papo} {server}; echo \"papo exited with $?\"; sleep 60",
            home = home.display(),
            papo = env!("CARGO_BIN_EXE_papo"),
        );
        self.run(&["new-session", "-d", "-s", session, "-x", "80", "-y", "24", &command]);
    }

    fn keys(&self, session: &str, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", session, key]);
            // Separate keys must not merge into an Alt chord (Esc followed by a key).
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    fn type_text(&self, session: &str, text: &str) {
        self.run(&["send-keys", "-t", session, "-l", text]);
        std::thread::sleep(Duration::from_millis(40));
    }

    fn screen(&self, session: &str) -> String {
        self.run(&["capture-pane", "-p", "-t", session])
    }

    /// Waits until the screen shows `text`; fails with the screen otherwise.
    fn wait_for(&self, session: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let screen = self.screen(session);
            if screen.contains(text) {
                return screen;
            }
            assert!(Instant::now() < deadline, "{text:?} never appeared in {session}:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types a message into the open conversation, sends it and waits until it is stored.
    fn say(&self, session: &str, text: &str) {
        self.type_text(session, text);
        self.keys(session, &["Enter"]);
        self.wait_for(session, &format!("you: {text} ✓"));
    }

    /// Answers the first-contact prompt after checking it shows the server's fingerprint.
    fn trust(&self, session: &str, fingerprint: Fingerprint) {
        let screen = self.wait_for(session, "Papo · new server");
        let shown = fingerprint.to_string();
        let (first, second) = shown.split_at(47);
        assert!(screen.contains(first) && screen.contains(&second[1..]), "fingerprint not shown:\n{screen}");
        self.type_text(session, "yes");
        self.keys(session, &["Enter"]);
    }

    /// A tmux variable of the session's pane, such as `alternate_on`.
    fn pane_flag(&self, session: &str, flag: &str) -> String {
        self.run(&["display-message", "-p", "-t", session, &format!("#{{{flag}}}")]).trim().to_owned()
    }

    /// The pid of the papo running in the session (the child of the pane's shell).
    fn papo_pid(&self, session: &str) -> String {
        let shell = self.pane_flag(session, "pane_pid");
        let output = Command::new("pgrep").args(["-P", &shell]).output().expect("run pgrep");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .expect("papo runs in the pane")
            .trim()
            .to_owned()
    }

    fn log_in(&self, session: &str, name: &str, password: &str) {
        self.wait_for(session, "Papo · log in");
        self.type_text(session, name);
        self.keys(session, &["Tab"]);
        self.type_text(session, password);
        self.keys(session, &["Enter"]);
        self.wait_for(session, &format!(" {name} @ "));
    }

    /// Alt+1, once `contact` is drawn: the key opens whichever contact is listed first.
    fn open_first_contact(&self, session: &str, contact: &str) {
        self.wait_for(session, contact);
        self.keys(session, &["M-1"]);
    }

    fn register(&self, session: &str, name: &str, password: &str) {
        self.wait_for(session, "Papo · log in");
        self.keys(session, &["F2"]);
        self.wait_for(session, "create account");
        self.type_text(session, name);
        self.keys(session, &["Tab"]);
        self.type_text(session, password);
        self.keys(session, &["Tab"]);
        self.type_text(session, password);
        self.keys(session, &["Enter"]);
        self.wait_for(session, &format!(" {name} @ "));
    }
}

/// What papo wrote to a terminal (kept by `pipe-pane`), once it holds `wanted`.
fn wait_for_output(path: &Path, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        // What ratatui draws between two titles does not count when asking for both.
        if output.contains(wanted) || titles_only(&output).contains(wanted) {
            return output;
        }
        assert!(Instant::now() < deadline, "{wanted:?} never written; got {output:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The OSC sequences of `output` (each from `ESC ]` to its BEL), one after the other.
fn titles_only(output: &str) -> String {
    output
        .split("\x1b]")
        .skip(1)
        .filter_map(|rest| rest.split_once('\x07'))
        .map(|(osc, _)| format!("\x1b]{osc}\x07"))
        .collect()
}

/// Bells in `output` that do not end an OSC sequence (which BEL also does).
fn bells_outside_osc(output: &str) -> usize {
    let mut bells = 0;
    let mut rest = output;
    while let Some(at) = rest.find(['\x07', '\x1b']) {
        if rest[at..].starts_with("\x1b]") {
            // Skip to the end of the OSC sequence: its BEL or ST.
            let body = &rest[at + 2..];
            let end = body.find(['\x07', '\x1b']).map_or(body.len(), |end| end + 1);
            rest = &body[end..];
        } else {
            bells += usize::from(rest[at..].starts_with('\x07'));
            rest = &rest[at + 1..];
        }
    }
    bells
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// A home directory whose papo already trusts `server`, as after the user said yes.
fn trusting_home(server: &TestServer) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    KnownServers::at(home.path().join("data/papo/known_servers"))
        .trust(&server.addr.to_string(), server.fingerprint.unwrap())
        .unwrap();
    home
}

#[test]
fn two_people_chat_switch_recipients_and_get_offline_messages() {
    let Some(tmux) = Tmux::new("chat") else { return };
    let server = TestServer::start();
    let address = server.addr.to_string();
    server.connect().register("carla", PASSWORD).unwrap();
    let homes = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];

    let fingerprint = server.fingerprint.expect("a TLS server");
    tmux.open("ana", &address, homes[0].path());
    tmux.trust("ana", fingerprint);
    tmux.register("ana", "ana", "ana's password");
    tmux.open("bia", &address, homes[1].path());
    tmux.trust("bia", fingerprint);
    tmux.register("bia", "bia", "bia's password");
    let remembered = std::fs::read_to_string(homes[0].path().join("data/papo/known_servers")).unwrap();
    assert!(remembered.contains(&format!("{address} {fingerprint}")), "not remembered: {remembered}");

    // From here on, everything papo writes to bia's terminal is kept, raw.
    let raw = homes[1].path().join("raw-output");
    tmux.run(&["pipe-pane", "-o", "-t", "bia", &format!("cat >> {}", raw.display())]);

    // Ana finds bia with the quick switcher and writes.
    tmux.keys("ana", &["C-k"]);
    tmux.wait_for("ana", "Go to (Ctrl+K)");
    tmux.type_text("ana", "bia");
    tmux.keys("ana", &["Enter"]);
    tmux.wait_for("ana", "Message to bia");
    tmux.say("ana", "olá bia, tudo bem? 👋");

    // Bia sees the unread badge; with no conversation open, her terminal got a bell and
    // the title with the unread count.
    tmux.wait_for("bia", "1 unread");
    let output = wait_for_output(&raw, "\x1b]2;papo (1)\x07");
    assert!(bells_outside_osc(&output) >= 1, "no bell in {output:?}");
    // She opens the conversation with Ctrl+N and reads it: the count leaves the title.
    tmux.keys("bia", &["C-n"]);
    tmux.wait_for("bia", "ana: olá bia, tudo bem? 👋");
    tmux.wait_for("ana", "olá bia, tudo bem? 👋 ✓✓");
    let output = wait_for_output(&raw, "\x1b]2;papo (1)\x07\x1b]2;papo\x07");
    assert_eq!(bells_outside_osc(&output), 1, "a bell for one message, none for reading it: {output:?}");

    // Bia switches recipient with a shortcut and writes to carla, who is offline.
    tmux.keys("bia", &["C-n"]);
    tmux.wait_for("bia", "Message to carla");
    tmux.say("bia", "carla, me liga quando chegar");

    // Carla logs in later, from a machine that trusted the server before (no prompt), and
    // finds it waiting.
    KnownServers::at(homes[2].path().join("data/papo/known_servers")).trust(&address, fingerprint).unwrap();
    tmux.open("carla", &address, homes[2].path());
    tmux.wait_for("carla", "Papo · log in");
    tmux.type_text("carla", "carla");
    tmux.keys("carla", &["Tab"]);
    tmux.type_text("carla", PASSWORD);
    tmux.keys("carla", &["Enter"]);
    tmux.wait_for("carla", "1 message arrived while you were away");
    tmux.open_first_contact("carla", "bia");
    tmux.wait_for("carla", "bia: carla, me liga quando chegar");

    // Ctrl+C logs out, exits 0 and gives the terminal back.
    tmux.keys("ana", &["C-c"]);
    let screen = tmux.wait_for("ana", "papo exited with");
    assert!(screen.contains("papo exited with 0"), "papo did not exit cleanly:\n{screen}");
    assert!(!screen.contains("Contacts"), "the full-screen UI was left on the terminal:\n{screen}");
    let config = std::fs::read_to_string(homes[0].path().join("config/papo/config")).unwrap();
    assert!(config.contains(&format!("server = {address}\n")), "the server was not remembered: {config}");
    // The server saw ana leave.
    let (mut watcher, _) = server.login("carla");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if watcher.contacts().unwrap().iter().any(|c| c.name.as_str() == "ana" && !c.online) {
            break;
        }
        assert!(Instant::now() < deadline, "ana still online after Ctrl+C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn queued_messages_survive_quitting_and_sigterm_restores_the_terminal() {
    let Some(tmux) = Tmux::new("quit") else { return };
    // The server goes away; a message typed now is queued, and Ctrl+C says it will be sent.
    let queued = queued_for_erin_while_the_server_is_down(&tmux, "queued then quit");
    tmux.keys("carol", &["C-c"]);
    let screen = tmux.wait_for("carol", "papo exited with");
    assert!(screen.contains("papo exited with 0"), "{screen}");
    assert!(screen.contains("1 message will be sent when the server is back"), "{screen}");

    // Back, and papo started again: logging in sends it, exactly once.
    let _server = queued.sent_once_at_the_next_login(&tmux);

    // SIGTERM: the terminal is given back (no alternate screen, no mouse tracking, the
    // title papo set emptied and the one from before popped off the title stack), exit 0.
    let raw = queued.home.path().join("raw-output");
    tmux.run(&["pipe-pane", "-o", "-t", "again", &format!("cat >> {}", raw.display())]);
    assert_eq!(tmux.pane_flag("again", "alternate_on"), "1");
    let pid = tmux.papo_pid("again");
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let screen = tmux.wait_for("again", "papo exited with");
    assert!(screen.contains("papo exited with 0"), "{screen}");
    assert_eq!(tmux.pane_flag("again", "alternate_on"), "0", "still on the alternate screen");
    assert_eq!(tmux.pane_flag("again", "mouse_any_flag"), "0", "mouse tracking left on");
    wait_for_output(&raw, "\x1b]2;\x07\x1b[23;0t");
}

/// Issue 15 item 15: SIGHUP (the terminal window closed) is handled like Ctrl+C too: a message
/// queued while the server is away is kept on disk and sent at the next login, and the
/// terminal is given back.
#[test]
fn sighup_keeps_a_queued_message_and_restores_the_terminal() {
    let Some(tmux) = Tmux::new("hup") else { return };
    let queued = queued_for_erin_while_the_server_is_down(&tmux, "queued then hung up");
    assert_eq!(tmux.pane_flag("carol", "mouse_any_flag"), "1");
    let pid = tmux.papo_pid("carol");
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let screen = tmux.wait_for("carol", "papo exited with");
    assert!(screen.contains("papo exited with 0"), "{screen}");
    assert!(screen.contains("1 message will be sent when the server is back"), "{screen}");
    assert_eq!(tmux.pane_flag("carol", "alternate_on"), "0", "still on the alternate screen");
    assert_eq!(tmux.pane_flag("carol", "mouse_any_flag"), "0", "mouse tracking left on");

    queued.sent_once_at_the_next_login(&tmux);
}

/// A message carol (tmux session "carol", a new account) wrote to erin while the server was
/// down, shown queued; with what it takes to start the server again.
struct QueuedWhileDown {
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    home: tempfile::TempDir,
    body: &'static str,
}

fn queued_for_erin_while_the_server_is_down(tmux: &Tmux, body: &'static str) -> QueuedWhileDown {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), |_| {});
    let addr = server.addr;
    server.connect().register("erin", PASSWORD).unwrap();
    let home = trusting_home(&server);

    tmux.open("carol", &addr.to_string(), home.path());
    tmux.register("carol", "carol", "carol's password");
    tmux.keys("carol", &["C-k"]);
    tmux.type_text("carol", "erin");
    tmux.keys("carol", &["Enter"]);
    tmux.wait_for("carol", "Message to erin");
    server.stop().unwrap();
    tmux.wait_for("carol", "offline");
    tmux.type_text("carol", body);
    tmux.keys("carol", &["Enter"]);
    tmux.wait_for("carol", &format!("{body} ◷ queued"));
    QueuedWhileDown { dir, addr, home, body }
}

impl QueuedWhileDown {
    /// Starts the server again and papo in tmux session "again": logging in as carol sends the
    /// message, exactly once. The server, still running.
    fn sent_once_at_the_next_login(&self, tmux: &Tmux) -> TestServer {
        let listener = std::net::TcpListener::bind(self.addr).unwrap();
        let server = TestServer::start_on(listener, self.dir.path(), |_| {});
        tmux.open("again", &self.addr.to_string(), self.home.path());
        tmux.log_in("again", "carol", "carol's password");
        tmux.open_first_contact("again", "erin");
        tmux.wait_for("again", &format!("you: {} ✓", self.body));
        let (mut erin, _) = server.login("erin");
        let bodies: Vec<String> =
            erin.history("carol", None, 50).unwrap().messages.into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, [self.body], "sent exactly once");
        server
    }
}

/// A scriptable `papo` command as `user` (whose password is [`PASSWORD`]), with a home of
/// its own, trusting the server's certificate by its fingerprint; its standard output.
fn papo_command(server: &TestServer, user: &str, args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let (command, rest) = args.split_first().expect("a subcommand");
    let mut argv = command.split(' ').collect::<Vec<_>>();
    argv.extend(["--user", user]);
    argv.extend(rest);
    let output = Command::new(env!("CARGO_BIN_EXE_papo"))
        .args(&argv)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("XDG_DATA_HOME", home.path())
        .env("PAPO_SERVER", server.addr.to_string())
        .env("PAPO_PASSWORD", PASSWORD)
        .env("PAPO_TRUST_FINGERPRINT", server.fingerprint.expect("a TLS server").to_string())
        .env_remove("PAPO_USER")
        .env_remove("PAPO_PLAINTEXT")
        .output()
        .unwrap();
    assert!(output.status.success(), "papo {argv:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_group_made_by_a_script_reaches_the_chat_and_back() {
    let Some(tmux) = Tmux::new("group") else { return };
    let server = TestServer::start();
    let address = server.addr.to_string();
    for user in ["ana", "gia"] {
        papo_command(&server, user, &["register"]);
    }
    let home = trusting_home(&server);
    tmux.open("gia", &address, home.path());
    tmux.log_in("gia", "gia", PASSWORD);

    // Ana makes the group from a script while gia is in the chat: it shows up in her list.
    assert_eq!(
        papo_command(&server, "ana", &["group create", "#lab", "gia"]),
        "created #lab with 2 members\n"
    );
    tmux.wait_for("gia", "#lab");
    papo_command(&server, "ana", &["send", "#lab", "bom dia, grupo"]);

    tmux.keys("gia", &["C-k"]);
    tmux.wait_for("gia", "Go to (Ctrl+K)");
    tmux.type_text("gia", "#lab");
    tmux.keys("gia", &["Enter"]);
    tmux.wait_for("gia", "Message to #lab");
    tmux.wait_for("gia", "ana: bom dia, grupo");
    tmux.type_text("gia", "bom dia, ana");
    tmux.keys("gia", &["Enter"]);
    tmux.wait_for("gia", "you: bom dia, ana ✓");

    let history = papo_command(&server, "ana", &["history", "#lab"]);
    let lines: Vec<&str> = history.lines().map(|line| line.split_once(' ').unwrap().1).collect();
    assert_eq!(lines, ["ana -> #lab: bom dia, grupo", "gia -> #lab: bom dia, ana"], "{history}");
    assert_eq!(papo_command(&server, "ana", &["groups"]), "#lab 2 1\n", "gia's reply is unread for ana");
}

#[test]
fn ctrl_f_finds_group_and_direct_texts_and_opens_the_group_at_its_match() {
    let Some(tmux) = Tmux::new("search") else { return };
    let server = TestServer::start();
    let address = server.addr.to_string();
    for user in ["ana", "gia"] {
        papo_command(&server, user, &["register"]);
    }
    papo_command(&server, "ana", &["group create", "#lab", "gia"]);
    papo_command(&server, "ana", &["send", "#lab", "the lab key is under the mat"]);
    papo_command(&server, "ana", &["send", "#lab", "nothing to find here"]);
    papo_command(&server, "ana", &["send", "gia", "got the key?"]);
    let home = trusting_home(&server);
    tmux.open("gia", &address, home.path());
    tmux.log_in("gia", "gia", PASSWORD);

    tmux.keys("gia", &["C-f"]);
    tmux.wait_for("gia", "Search every conversation and group");
    tmux.type_text("gia", "KEY");
    tmux.keys("gia", &["Enter"]);
    let screen = tmux.wait_for("gia", "2 found");
    let direct = screen.find("ana · ").expect("the direct match");
    let group = screen.find("#lab · ").expect("the group match");
    assert!(direct < group, "newest first:\n{screen}");
    assert!(screen.contains("ana: the lab key is under") && !screen.contains("nothing to find"), "{screen}");

    tmux.keys("gia", &["Down", "Enter"]);
    tmux.wait_for("gia", "Message to #lab");
    tmux.wait_for("gia", "ana: the lab key is under the mat");
    tmux.keys("gia", &["Escape"]);
    tmux.wait_for("gia", "2 found");
}

#[test]
fn a_group_in_two_terminals_rings_only_for_a_mention_and_shows_receipts_members_and_a_rename() {
    let Some(tmux) = Tmux::new("group-receipts") else { return };
    let server = TestServer::start();
    let address = server.addr.to_string();
    let homes = [trusting_home(&server), trusting_home(&server)];
    for (name, home) in ["dora", "eli"].into_iter().zip(&homes) {
        server.connect().register(name, PASSWORD).unwrap();
        tmux.open(name, &address, home.path());
        tmux.log_in(name, name, PASSWORD);
    }
    let raw = homes[1].path().join("raw-output");
    tmux.run(&["pipe-pane", "-o", "-t", "eli", &format!("cat >> {}", raw.display())]);

    tmux.type_text("dora", "/group create #lab eli");
    tmux.keys("dora", &["Enter"]);
    tmux.wait_for("dora", "created #lab");
    tmux.wait_for("dora", "   #lab");
    tmux.type_text("dora", "/msg #lab");
    tmux.keys("dora", &["Enter"]);
    tmux.wait_for("dora", "#lab · 2/2 online");

    // Plain group traffic counts as unread without a bell; a mention rings.
    tmux.say("dora", "hello all");
    wait_for_output(&raw, "\x1b]2;papo (1)\x07");
    tmux.say("dora", "@eli can you look?");
    let output = wait_for_output(&raw, "\x1b]2;papo (2)\x07");
    assert_eq!(bells_outside_osc(&output), 1, "one bell, for the mention: {output:?}");
    tmux.wait_for("dora", "@eli can you look? ✓✓ 1/1");

    // Eli opens the group and reads: dora sees it.
    tmux.keys("eli", &["M-1"]);
    tmux.wait_for("eli", "dora: @eli can you look?");
    tmux.wait_for("dora", "@eli can you look? ✓✓ 1/1 · read by 1");

    // The members pane, and a rename both terminals follow.
    tmux.keys("dora", &["M-m"]);
    tmux.wait_for("dora", "Members 2/2");
    tmux.wait_for("dora", "dora ★ (you)");
    tmux.type_text("dora", "/rename #lab2");
    tmux.keys("dora", &["Enter"]);
    tmux.wait_for("dora", "#lab2 · 2/2 online");
    tmux.wait_for("eli", "dora renamed the group (it was #lab)");
    tmux.wait_for("eli", "#lab2");
}

/// Text pasted by a terminal without bracketed paste arrives as keys, its line breaks as
/// Enter: it lands in the input as one message, not one sent per line.
#[test]
fn lines_pasted_without_bracketed_paste_wait_in_the_input() {
    let Some(tmux) = Tmux::new("paste") else { return };
    let server = TestServer::start();
    let address = server.addr.to_string();
    server.connect().register("erin", PASSWORD).unwrap();
    let home = trusting_home(&server);
    tmux.open("dana", &address, home.path());
    tmux.register("dana", "dana", "dana's password");
    tmux.keys("dana", &["C-k"]);
    tmux.type_text("dana", "erin");
    tmux.keys("dana", &["Enter"]);
    tmux.wait_for("dana", "Message to erin");
    // `paste-buffer` without -p writes the text as typed keys, each line break a CR.
    tmux.run(&["set-buffer", "-b", "lines", "line one\nline two\nline three"]);
    tmux.run(&["paste-buffer", "-b", "lines", "-t", "dana"]);
    let screen = tmux.wait_for("dana", "line three");
    assert!(screen.contains("│line one") && screen.contains("│line two"), "not in the input box:\n{screen}");
    assert!(!screen.contains("you: line"), "a line was sent:\n{screen}");
    // Enter sends it, once, as one message.
    tmux.keys("dana", &["Enter"]);
    tmux.wait_for("dana", "✓");
    let (mut erin, _) = server.login("erin");
    let bodies: Vec<String> =
        erin.history("dana", None, 50).unwrap().messages.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["line one\nline two\nline three"]);
}

/// Naming no server anywhere is a usage error, for the chat and the commands alike.
#[test]
fn no_server_named_is_a_usage_error_everywhere() {
    let Some(tmux) = Tmux::new("noserver") else { return };
    let home = tempfile::tempdir().unwrap();
    tmux.open("lost", "", home.path());
    let screen = tmux.wait_for("lost", "papo exited with");
    assert!(screen.contains("which server?"), "{screen}");
    assert!(screen.contains("papo exited with 2"), "{screen}");
    let output = Command::new(env!("CARGO_BIN_EXE_papo"))
        .args(["contacts", "--user", "ana"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("PAPO_PASSWORD", PASSWORD)
        .env_remove("PAPO_SERVER")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("which server?"));
}
