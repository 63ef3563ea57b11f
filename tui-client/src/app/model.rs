//! Everything the client shows, and nothing it does: state only.

use std::collections::HashMap;

use papo_protocol::{
    ChatMessage, Contact, GroupInfo, GroupMember, GroupMessage, GroupMessageKind, GroupName, GroupSummary,
    MessageId, ReceiptKind, UnixMillis, Username,
};
use time::UtcOffset;

use super::editor::Editor;
pub use crate::conv_key::ConvKey;
use crate::net::{Link, Outgoing, SearchQuery, TrustProblem};
use crate::settings::Prefs;

/// The whole client state; `view` draws it and `update` changes it.
#[derive(Debug)]
pub struct Model {
    /// `HOST:PORT` of the server.
    pub server: String,
    /// Offset for showing times, read once at start-up.
    pub utc_offset: UtcOffset,
    /// Terminal size in cells, for paging and wrapping decisions.
    pub viewport: (u16, u16),
    /// Connection state for the status bar.
    pub link: Link,
    /// Set while the server's certificate awaits the user's decision (or was refused); the
    /// login form stays hidden meanwhile, so no password can be typed for that server.
    pub trust: Option<TrustPrompt>,
    /// Which screen is up.
    pub screen: Screen,
    /// The login / create-account form.
    pub login: LoginForm,
    /// Who is logged in.
    pub me: Option<Username>,
    /// Every other user and every group of mine, in display order (see
    /// [`Model::sort_contacts`]).
    pub contacts: Vec<ContactEntry>,
    /// The open conversation.
    pub selected: Option<ConvKey>,
    /// Loaded conversations by user or group.
    pub conversations: HashMap<ConvKey, Conversation>,
    /// The message input box, holding the open conversation's draft.
    pub input: Editor,
    /// Drafts of the conversations not open now.
    pub drafts: HashMap<ConvKey, Editor>,
    /// Earlier inputs, oldest first, for Up/Down recall.
    pub input_history: Vec<String>,
    /// Position in `input_history` while recalling.
    pub recall: Option<usize>,
    /// Where plain keys go.
    pub focus: Focus,
    /// A box drawn over the chat screen.
    pub overlay: Option<Overlay>,
    /// A highlighted line such as "3 messages arrived while you were away".
    pub banner: Option<String>,
    /// The server said it is stopping; cleared once the link is back.
    pub server_stopping: bool,
    /// The user is walking the contact list: the list keeps its order meanwhile.
    pub navigating: bool,
    /// New activity asked for a re-sort while the user was navigating.
    pub resort_pending: bool,
    /// Colour and character set of the terminal.
    pub look: Look,
    /// The latest error or warning, cleared by the next key.
    pub notice: Option<String>,
    /// What the config file asks for: notifications, typing, muted conversations.
    pub prefs: Prefs,
    /// The time as last told by [`super::Msg::Clock`], for typing expiry and "last seen".
    pub now: UnixMillis,
    /// Whether the terminal has focus; terminals that never say count as focused.
    pub focused: bool,
    /// Bells and notifications for the terminal, taken (and written) after each batch.
    pub alerts: Vec<Alert>,
    /// Peers typing to us, and until when it is shown.
    pub typing: HashMap<Username, UnixMillis>,
    /// The peer we last told we are typing, and when.
    pub typing_sent: Option<(Username, UnixMillis)>,
    /// The last search, kept while its results are open or a conversation opened from them
    /// may return to them (Esc).
    pub search: Option<SearchState>,
    /// The conversation was opened from the search results: Esc goes back to them.
    pub from_search: bool,
    /// The members pane is wanted (Alt+M): shown while a group is open.
    pub show_members: bool,
    /// Groups shown here that the server's last list of groups did not have, while the
    /// client finds out whether they were renamed.
    pub unlisted: Unlisted,
    /// Next client-side message id; starts random so ids never repeat across runs.
    pub next_client_msg_id: u64,
    /// Set when the app should exit.
    pub quit: bool,
}

/// Groups this client shows that a fresh list of groups no longer has (renamed, deleted, or
/// I was removed while this machine was offline), and the groups of that list it did not
/// know, whose newest pages are asked for: a `Renamed` line there names a former name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unlisted {
    /// Shown here, not in the server's list, fate unknown yet.
    pub missing: Vec<GroupName>,
    /// New to this client; the newest page of each is on its way.
    pub asked: Vec<GroupName>,
    /// Missing groups a new group says it was renamed from, while the server is asked
    /// whether the new group holds a line this client has of the old one.
    pub proving: Vec<RenameProof>,
    /// New groups whose page or check failed for another reason than that they do not
    /// exist: until they are asked again, with the next list, no missing group is gone.
    pub unsure: Vec<GroupName>,
}

/// `to` says it was renamed from `from`; it is the same group only if it holds `line`, the
/// newest line this client has of `from` (line ids are unique across the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameProof {
    /// The missing group.
    pub from: GroupName,
    /// The new group that may be it.
    pub to: GroupName,
    /// The newest line id held here of `from`.
    pub line: MessageId,
}

/// Something to tell the user through the terminal, not the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// Ring the bell.
    Bell,
    /// A desktop notification: who wrote, and the text if previews are allowed.
    Desktop {
        /// The sender.
        from: Username,
        /// The group it was written in (it mentions me, or the group rings for all).
        group: Option<GroupName>,
        /// The text (sanitised when written), only with `notify_preview = true`.
        preview: Option<String>,
    },
}

/// A search and its results so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchState {
    /// What is typed.
    pub input: Editor,
    /// Only this conversation, with a user or a group (toggled with Tab, or `/search --here`).
    pub here: Option<ConvKey>,
    /// The search the results are for (the typed text may have changed since).
    pub ran: Option<SearchQuery>,
    /// Matches so far, direct and group ones in one list, newest first.
    pub hits: Vec<SearchHit>,
    /// Where the next page starts; `None` once everything was searched.
    pub next_before: Option<papo_protocol::MessageId>,
    /// A page is on its way.
    pub loading: bool,
    /// Highlighted row of `hits`.
    pub selected: usize,
    /// Why the last page failed.
    pub error: Option<String>,
}

/// One message that matched a search, from a direct conversation or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// Server id.
    pub id: MessageId,
    /// Where it was written: the other side of a direct conversation, or the group. Enter
    /// opens this conversation.
    pub conversation: ConvKey,
    /// Who wrote it (me too).
    pub from: Username,
    /// The text.
    pub body: String,
    /// When the server stored it.
    pub sent_at: UnixMillis,
}

impl SearchHit {
    /// A direct match, filed under the side of it that is not `me`.
    pub fn direct(message: ChatMessage, me: &Username) -> Self {
        let peer = if message.from == *me { message.to } else { message.from.clone() };
        Self {
            id: message.id,
            conversation: ConvKey::User(peer),
            from: message.from,
            body: message.body,
            sent_at: message.sent_at,
        }
    }
}

impl From<GroupMessage> for SearchHit {
    fn from(line: GroupMessage) -> Self {
        Self {
            id: line.id,
            conversation: ConvKey::Group(line.group),
            from: line.from,
            body: line.body,
            sent_at: line.sent_at,
        }
    }
}

/// The question about a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustPrompt {
    /// What is wrong with the certificate.
    pub problem: TrustProblem,
    /// The answer being typed: `yes`, or the fingerprint itself (as SSH accepts). A single
    /// key would let a name typed a moment too early trust a server unseen.
    pub answer: Editor,
    /// Why the last answer was not accepted.
    pub error: Option<String>,
    /// Lines the explanation is scrolled down, on a screen too small for all of it.
    pub scroll: usize,
}

impl TrustPrompt {
    /// A fresh question about `problem`.
    pub fn new(problem: TrustProblem) -> Self {
        Self { problem, answer: Editor::default(), error: None, scroll: 0 }
    }
}

/// Which screen is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Log in or create an account.
    Login,
    /// Contacts, history and input.
    Chat,
}

/// Where plain keys go on the chat screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// Up/Down move through contacts.
    Contacts,
    /// Keys edit the message.
    Input,
}

/// What the terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// Colours (off with `NO_COLOR`): without them, shapes and attributes carry the meaning.
    pub color: bool,
    /// Unicode box drawing and marks (off when the locale is not UTF-8): ASCII instead.
    pub unicode: bool,
}

impl Default for Look {
    fn default() -> Self {
        Self { color: true, unicode: true }
    }
}

impl Look {
    /// What the environment asks for: `NO_COLOR` (set and not empty) turns colour off, and
    /// a locale that is not UTF-8 (`LC_ALL`, else `LC_CTYPE`, else `LANG`) turns Unicode off.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Self {
        let color = var("NO_COLOR").is_none_or(|value| value.is_empty());
        let locale =
            ["LC_ALL", "LC_CTYPE", "LANG"].into_iter().find_map(|name| var(name).filter(|v| !v.is_empty()));
        let unicode = locale.is_some_and(|locale| {
            let locale = locale.to_ascii_lowercase();
            locale.contains("utf-8") || locale.contains("utf8")
        });
        Self { color, unicode }
    }
}

/// A box over the chat screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// Every shortcut.
    Help(HelpState),
    /// Fuzzy contact search (Ctrl+K).
    QuickSwitch(QuickSwitch),
    /// Message search (Ctrl+F, `/search`); its state is [`Model::search`].
    Search,
    /// Changing the password (`/passwd`).
    Password(PasswordForm),
    /// `/delete`: whether to delete this group, for everyone.
    ConfirmDelete(GroupName),
}

/// The `/passwd` form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordForm {
    /// The current password.
    pub old: Editor,
    /// The new password.
    pub new: Editor,
    /// The new password again.
    pub confirm: Editor,
    /// Which field has the cursor: 0, 1 or 2.
    pub field: usize,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Waiting for the server.
    pub busy: bool,
}

/// State of the help overlay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HelpState {
    /// Lines scrolled down.
    pub scroll: usize,
    /// Opened by typing `?` into an empty input: a character typed next was meant for the
    /// message, so it closes the help and both characters go to the input.
    pub by_question_mark: bool,
}

/// State of the quick switcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuickSwitch {
    /// What was typed.
    pub query: Editor,
    /// Matching contacts, best first.
    pub matches: Vec<ConvKey>,
    /// Highlighted row of `matches`.
    pub selected: usize,
}

/// Logging in or creating an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMode {
    /// Name and password.
    LogIn,
    /// Name, password and confirmation.
    Register,
}

/// A field of the login form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginField {
    /// The name.
    Name,
    /// The password.
    Password,
    /// The repeated password (create account only).
    Confirm,
    /// An invite code from the administrator (create account only, optional: empty means
    /// none).
    Invite,
}

/// The login form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginForm {
    /// Log in or create an account.
    pub mode: LoginMode,
    /// The focused field.
    pub field: LoginField,
    /// Account name.
    pub name: Editor,
    /// Password (drawn masked).
    pub password: Editor,
    /// Password again.
    pub confirm: Editor,
    /// Invite code, empty for none.
    pub invite: Editor,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The error says there is no connection yet: it goes once there is one.
    pub offline_error: bool,
    /// Waiting for the server's answer.
    pub busy: bool,
}

/// What a deleted account's conversation says instead of its presence.
pub const DELETED_ACCOUNT: &str = "the account was deleted";

/// One user or group in the contacts pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactEntry {
    /// The user or group.
    pub name: ConvKey,
    /// Whether they are connected (never for a group).
    pub online: bool,
    /// Messages from them (or texts in the group) not yet read.
    pub unread: u64,
    /// Id of the newest message with them (0 if none): recency for sorting.
    pub last_id: MessageId,
    /// When that message was sent.
    pub last_at: Option<UnixMillis>,
    /// When their last session ended, if known.
    pub last_seen: Option<UnixMillis>,
    /// Why a group or user can no longer be sent to (I was removed, left it elsewhere, or it
    /// was deleted; the administrator deleted the account): it stays listed, with what it
    /// showed, until the next list of groups.
    pub gone: Option<String>,
}

/// One stored line of a conversation: a direct message, or a group's text or system line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// Server id.
    pub id: MessageId,
    /// Who wrote it, or did what a system line says.
    pub from: Username,
    /// The text (empty for system lines).
    pub body: String,
    /// When the server stored it.
    pub sent_at: UnixMillis,
    /// A text, or which change to the group; always a text in a direct conversation.
    pub kind: GroupMessageKind,
}

/// One conversation as far as it is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conversation {
    /// Stored lines, oldest first, unique by id.
    pub messages: Vec<Post>,
    /// My messages not yet acknowledged by the server, oldest first.
    pub outgoing: Vec<OutgoingView>,
    /// Whether the newest page was asked for.
    pub requested: bool,
    /// A page request is on its way.
    pub loading: bool,
    /// The server holds older messages than the loaded ones.
    pub more: bool,
    /// Newest of my messages the peer's client received.
    pub peer_delivered_up_to: MessageId,
    /// Newest of my messages the peer read.
    pub peer_read_up_to: MessageId,
    /// Lines scrolled up from the newest (0 = following new messages).
    pub scroll: usize,
    /// Messages that arrived while scrolled up.
    pub new_below: usize,
    /// The connection was lost since the newest page was fetched: fetch it again when the
    /// conversation is opened.
    pub stale: bool,
    /// The first unread message when the conversation was opened: a `── new ──` line is
    /// drawn above it until the conversation is left.
    pub marker: Option<MessageId>,
    /// Unread messages to place the marker for, once enough history is loaded.
    pub marker_pending: u64,
    /// A search result to show: older pages are loaded until it is, then it is scrolled to.
    pub jump_to: Option<MessageId>,
    /// The search result opened last, drawn highlighted.
    pub highlight: Option<MessageId>,
    /// A group's owner and members, once the server told them.
    pub roster: Option<Roster>,
    /// The roster was asked for since the last (re)connect.
    pub roster_asked: bool,
}

/// A group's owner and members as this client knows them: from the server's `GroupInfo`,
/// then kept up to date by presence, receipts and the group's own lines, so no event costs
/// more than a look-up among the members (never a walk through the conversation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// Who may rename, delete and hand it over.
    pub owner: Username,
    /// Everyone in it, in name order, with presence and how far they received and read.
    pub members: Vec<GroupMember>,
}

/// How far one of my texts in a group got, among the other members who were in the group
/// when it was sent and still are: "✓✓ 3/5 · read by 2".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDelivery {
    /// Members whose client has it.
    pub delivered: usize,
    /// Members who read it.
    pub read: usize,
    /// Members it was for.
    pub of: usize,
}

/// A message on its way out, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingView {
    /// The message.
    pub outgoing: Outgoing,
    /// Why the server refused it, if it did.
    pub failed: Option<String>,
}

/// How far one of my messages got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Typed while offline or not yet acknowledged.
    Sending,
    /// Durable on the server.
    Sent,
    /// The recipient's client has it.
    Delivered,
    /// The recipient opened the conversation.
    Read,
}

impl Model {
    /// A fresh client for `server` on the login screen.
    pub fn new(
        server: String,
        utc_offset: UtcOffset,
        viewport: (u16, u16),
        first_client_msg_id: u64,
    ) -> Self {
        Self {
            server,
            utc_offset,
            viewport,
            link: Link::Connecting,
            trust: None,
            screen: Screen::Login,
            login: LoginForm::default(),
            me: None,
            contacts: Vec::new(),
            selected: None,
            conversations: HashMap::new(),
            input: Editor::default(),
            drafts: HashMap::new(),
            input_history: Vec::new(),
            recall: None,
            focus: Focus::Input,
            overlay: None,
            banner: None,
            server_stopping: false,
            navigating: false,
            resort_pending: false,
            look: Look::default(),
            notice: None,
            prefs: Prefs::default(),
            now: 0,
            focused: true,
            alerts: Vec::new(),
            typing: HashMap::new(),
            typing_sent: None,
            search: None,
            from_search: false,
            show_members: false,
            unlisted: Unlisted::default(),
            next_client_msg_id: first_client_msg_id,
            quit: false,
        }
    }

    /// The open conversation's peer and state.
    pub fn current(&self) -> Option<(&ConvKey, Option<&Conversation>)> {
        self.selected.as_ref().map(|peer| (peer, self.conversations.get(peer)))
    }

    /// The contact entry for `name`.
    pub fn contact(&self, name: &ConvKey) -> Option<&ContactEntry> {
        self.contacts.iter().find(|c| c.name == *name)
    }

    /// The contact entry for `name`, created (offline, no messages) if missing.
    pub fn contact_mut(&mut self, name: &ConvKey) -> &mut ContactEntry {
        let at = match self.contacts.iter().position(|c| c.name == *name) {
            Some(at) => at,
            None => {
                self.contacts.push(ContactEntry::new(name.clone()));
                self.contacts.len() - 1
            }
        };
        &mut self.contacts[at]
    }

    /// Whether the members pane is drawn: asked for (Alt+M), and a group is open.
    pub fn members_shown(&self) -> bool {
        self.show_members && matches!(self.selected, Some(ConvKey::Group(_)))
    }

    /// Whether messages typed now wait for a connection.
    pub fn is_offline(&self) -> bool {
        !matches!(self.link, Link::Online)
    }

    /// Unread messages over all conversations.
    pub fn total_unread(&self) -> u64 {
        self.contacts.iter().map(|c| c.unread).sum()
    }

    /// Conversations with unread messages, oldest activity first: where Alt+A goes next,
    /// and the order the status bar names them in.
    pub fn unread_contacts(&self) -> Vec<&ContactEntry> {
        let mut unread: Vec<&ContactEntry> = self.contacts.iter().filter(|c| c.unread > 0).collect();
        unread.sort_by_key(|c| (c.last_id, c.name.clone()));
        unread
    }

    /// The terminal title: `papo (3)` with unread messages, else `papo`.
    pub fn title(&self) -> String {
        match self.total_unread() {
            0 => "papo".to_owned(),
            n => format!("papo ({n})"),
        }
    }

    /// Whether `peer` is typing to us now.
    pub fn is_typing(&self, peer: &Username) -> bool {
        self.typing.get(peer).is_some_and(|&until| until > self.now)
    }

    /// How long the event loop may sleep before the screen must change by itself: a second
    /// while offline (the retry countdown), or until a typing indicator expires.
    pub fn wake_in(&self) -> Option<std::time::Duration> {
        let countdown =
            matches!(self.link, Link::Offline { .. }).then_some(std::time::Duration::from_secs(1));
        let typing = self
            .typing
            .values()
            .filter(|&&until| until > self.now)
            .min()
            .map(|&until| std::time::Duration::from_millis(u64::try_from(until - self.now).unwrap_or(0)));
        countdown.into_iter().chain(typing).min()
    }

    /// Unread first, then online, then most recent conversation, then name.
    pub fn sort_contacts(&mut self) {
        self.contacts.sort_by(|a, b| {
            (a.unread == 0, !a.online, std::cmp::Reverse(a.last_id), &a.name).cmp(&(
                b.unread == 0,
                !b.online,
                std::cmp::Reverse(b.last_id),
                &b.name,
            ))
        });
    }
}

impl Default for LoginForm {
    fn default() -> Self {
        Self {
            mode: LoginMode::LogIn,
            field: LoginField::Name,
            name: Editor::default(),
            password: Editor::default(),
            confirm: Editor::default(),
            invite: Editor::default(),
            error: None,
            offline_error: false,
            busy: false,
        }
    }
}

impl LoginForm {
    /// The fields in Tab order for the current mode.
    pub fn fields(&self) -> &'static [LoginField] {
        match self.mode {
            LoginMode::LogIn => &[LoginField::Name, LoginField::Password],
            LoginMode::Register => {
                &[LoginField::Name, LoginField::Password, LoginField::Confirm, LoginField::Invite]
            }
        }
    }

    /// The focused field's editor.
    pub fn focused_mut(&mut self) -> &mut Editor {
        match self.field {
            LoginField::Name => &mut self.name,
            LoginField::Password => &mut self.password,
            LoginField::Confirm => &mut self.confirm,
            LoginField::Invite => &mut self.invite,
        }
    }
}

impl ContactEntry {
    /// A user or group we know nothing about yet.
    pub fn new(name: ConvKey) -> Self {
        Self { name, online: false, unread: 0, last_id: 0, last_at: None, last_seen: None, gone: None }
    }
}

impl From<Contact> for ContactEntry {
    fn from(contact: Contact) -> Self {
        Self {
            online: contact.online,
            unread: contact.unread,
            last_id: contact.last.as_ref().map_or(0, |last| last.id),
            last_at: contact.last.map(|last| last.sent_at),
            last_seen: contact.last_seen,
            name: ConvKey::User(contact.name),
            gone: contact.deleted.then(|| DELETED_ACCOUNT.to_owned()),
        }
    }
}

impl From<GroupSummary> for ContactEntry {
    fn from(group: GroupSummary) -> Self {
        Self {
            unread: group.unread,
            last_id: group.last.as_ref().map_or(0, |last| last.id),
            last_at: group.last.map(|last| last.sent_at),
            name: ConvKey::Group(group.name),
            online: false,
            last_seen: None,
            gone: None,
        }
    }
}

impl From<ChatMessage> for Post {
    fn from(message: ChatMessage) -> Self {
        let ChatMessage { id, from, body, sent_at, .. } = message;
        Self { id, from, body, sent_at, kind: GroupMessageKind::Text }
    }
}

impl From<GroupMessage> for Post {
    fn from(line: GroupMessage) -> Self {
        let GroupMessage { id, from, body, sent_at, kind, .. } = line;
        Self { id, from, body, sent_at, kind }
    }
}

impl Roster {
    /// The roster in a `GroupInfo`.
    pub fn from_info(info: GroupInfo) -> Self {
        let mut members = info.members;
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members.dedup_by(|a, b| a.name == b.name);
        Self { owner: info.owner, members }
    }

    /// The member called `name`.
    pub fn member(&self, name: &Username) -> Option<&GroupMember> {
        self.members.binary_search_by(|m| m.name.cmp(name)).ok().map(|at| &self.members[at])
    }

    /// The member called `name`, to change.
    pub fn member_mut(&mut self, name: &Username) -> Option<&mut GroupMember> {
        self.members.binary_search_by(|m| m.name.cmp(name)).ok().map(|at| &mut self.members[at])
    }

    /// `name` joined with the line `joined_at`; nothing if already in.
    pub fn add(&mut self, name: Username, joined_at: MessageId, online: bool) {
        if let Err(at) = self.members.binary_search_by(|m| m.name.cmp(&name)) {
            let member = GroupMember { name, online, joined_at, delivered_up_to: 0, read_up_to: 0 };
            self.members.insert(at, member);
        }
    }

    /// `name` is no longer in the group.
    pub fn remove(&mut self, name: &Username) {
        if let Ok(at) = self.members.binary_search_by(|m| m.name.cmp(name)) {
            self.members.remove(at);
        }
    }

    /// `member` received (or read, which includes receiving) the lines up to `up_to`.
    pub fn receipt(&mut self, member: &Username, kind: ReceiptKind, up_to: MessageId) {
        let Some(member) = self.member_mut(member) else { return };
        member.delivered_up_to = member.delivered_up_to.max(up_to);
        if kind == ReceiptKind::Read {
            member.read_up_to = member.read_up_to.max(up_to);
        }
    }

    /// How many members are online.
    pub fn online(&self) -> usize {
        self.members.iter().filter(|m| m.online).count()
    }

    /// The other members my text `id` was for: in the group before it was sent.
    pub fn audience<'a>(&'a self, id: MessageId, me: &'a Username) -> impl Iterator<Item = &'a GroupMember> {
        self.members.iter().filter(move |m| m.name != *me && m.joined_at < id)
    }

    /// How far my text `id` got, from the members' watermarks.
    pub fn delivery(&self, id: MessageId, me: &Username) -> GroupDelivery {
        let mut counts = GroupDelivery { delivered: 0, read: 0, of: 0 };
        for member in self.audience(id, me) {
            counts.of += 1;
            counts.delivered += usize::from(member.delivered_up_to >= id || member.read_up_to >= id);
            counts.read += usize::from(member.read_up_to >= id);
        }
        counts
    }
}

impl Conversation {
    /// Adds messages, keeping id order and dropping ones already known.
    pub fn insert(&mut self, messages: impl IntoIterator<Item = Post>) -> usize {
        let mut added = 0;
        for message in messages {
            if let Err(at) = self.messages.binary_search_by_key(&message.id, |m| m.id) {
                self.messages.insert(at, message);
                added += 1;
            }
        }
        added
    }

    /// Takes in `other`, the same conversation under another name: its lines by id, and its
    /// queued messages that are not here yet.
    pub fn take_in(&mut self, other: Conversation) {
        self.insert(other.messages);
        for outgoing in other.outgoing {
            let id = outgoing.outgoing.client_msg_id;
            if !self.outgoing.iter().any(|o| o.outgoing.client_msg_id == id) {
                self.outgoing.push(outgoing);
            }
        }
    }

    /// Merges a page, by id. A newest page that does not reach the loaded messages (more
    /// than a page arrived while away) replaces them, so no gap is ever shown.
    pub fn merge_page(&mut self, before: Option<MessageId>, messages: Vec<Post>, more: bool) {
        let oldest_in_page = messages.iter().map(|m| m.id).min();
        let newest_loaded = self.messages.last().map(|m| m.id);
        let gap = before.is_none()
            && more
            && matches!((oldest_in_page, newest_loaded), (Some(oldest), Some(newest)) if oldest > newest);
        if gap {
            self.messages.clear();
            self.scroll = 0;
            self.new_below = 0;
        }
        let sets_more = match before {
            None => gap || self.messages.is_empty(),
            Some(before) => Some(before) == self.oldest_id(),
        };
        if sets_more {
            self.more = more;
        }
        self.insert(messages);
    }

    /// How far my message `id` got.
    pub fn delivery(&self, id: MessageId) -> Delivery {
        if id <= self.peer_read_up_to {
            Delivery::Read
        } else if id <= self.peer_delivered_up_to {
            Delivery::Delivered
        } else {
            Delivery::Sent
        }
    }

    /// The oldest loaded message id, for fetching the page before it.
    pub fn oldest_id(&self) -> Option<MessageId> {
        self.messages.first().map(|m| m.id)
    }
}
