//! Groups and their members.

use comet_model::{
    Ban, Departure, EventType, Group, GroupChanges, GroupType, Guid, Member, Millis, NewGroup, NewMember,
    PasswordChange, Scope, Uid,
};
use serde_json::json;
use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use crate::error::{is_unique_violation, unencodable};
use crate::rows::{self, get};
use crate::{Backend, Store, StoreError, outbox};

/// The columns every group query selects, in the order [`group_from_row`] reads them.
macro_rules! group_columns {
    () => {
        "guid, name, group_type, description, icon, owner, metadata, members_count, created_at, updated_at"
    };
}

impl Store {
    /// Creates a group whose owner is its first member, as an admin (`members_count` 1), and in the same
    /// transaction the `group.created` event (its data is the group as JSON).
    ///
    /// Fails with `Conflict("group")` when the guid is taken.
    pub async fn create_group(&self, group: &NewGroup, now: Millis) -> Result<Group, StoreError> {
        let created = Group {
            guid: group.guid.clone(),
            name: group.name.clone(),
            group_type: group.group_type,
            description: group.description.clone(),
            icon: group.icon.clone(),
            owner: group.owner.clone(),
            metadata: group.metadata.clone(),
            members_count: 1,
            created_at: now,
            updated_at: now,
        };
        let event_data = serde_json::to_value(&created).map_err(unencodable)?;
        let mut transaction = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO chat_groups (guid, name, group_type, password_hash, description, icon, owner, metadata, \
             members_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(created.guid.as_str())
        .bind(created.name.as_str())
        .bind(created.group_type.as_str())
        .bind(group.password_hash.as_deref())
        .bind(created.description.as_deref())
        .bind(created.icon.as_deref())
        .bind(created.owner.as_str())
        .bind(rows::optional_json_text(created.metadata.as_ref()))
        .bind(created.members_count)
        .bind(created.created_at)
        .bind(created.updated_at)
        .execute(&mut *transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                transaction.rollback().await?;
                return Err(StoreError::Conflict("group"));
            }
            Err(error) => return Err(error.into()),
        }
        let owner =
            Member { guid: created.guid.clone(), uid: created.owner.clone(), scope: Scope::Admin, joined_at: now };
        insert_member(&mut transaction, &owner).await?;
        outbox::insert(&mut transaction, EventType::GroupCreated, created.guid.as_str(), 0, now, &event_data).await?;
        self.commit_events(transaction).await?;
        Ok(created)
    }

    /// The group with this guid; `None` when there is none or it was deleted.
    pub async fn get_group(&self, guid: &Guid) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            group_columns!(),
            " FROM chat_groups WHERE guid = ? AND deleted_at IS NULL"
        ))
        .bind(guid.as_str())
        .fetch_optional(&self.reads)
        .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    /// The password hash of a password group; `None` for other groups and for a guid that does not exist.
    pub async fn group_password_hash(&self, guid: &Guid) -> Result<Option<String>, StoreError> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM chat_groups WHERE guid = ? AND deleted_at IS NULL")
                .bind(guid.as_str())
                .fetch_optional(&self.reads)
                .await?;
        Ok(hash.flatten())
    }

    /// Adds members to a group in one transaction and returns the ones added.
    ///
    /// Users already in the group keep their scope and are not returned (a uid listed twice is added once), so
    /// a retried request changes nothing. Users banned from the group are not added (and not returned). `members_count` grows by the number added, and each added member gets
    /// a `group.member_added` event (data `{"guid", "uid", "scope"}`). Fails with `NotFound("group")` when the
    /// group does not exist.
    pub async fn add_members(
        &self,
        guid: &Guid,
        members: &[NewMember],
        now: Millis,
    ) -> Result<Vec<Member>, StoreError> {
        self.admit(guid, members, EventType::GroupMemberAdded, now).await
    }

    /// `uid` joins the group by itself, as a participant: as [`Store::add_members`] with one member, but the
    /// event is `group.member_joined` (same data). `None` when it was already a member or is banned.
    pub async fn join_group(&self, guid: &Guid, uid: &Uid, now: Millis) -> Result<Option<Member>, StoreError> {
        let member = [NewMember { uid: uid.clone(), scope: Scope::Participant }];
        Ok(self.admit(guid, &member, EventType::GroupMemberJoined, now).await?.pop())
    }

    async fn admit(
        &self,
        guid: &Guid,
        members: &[NewMember],
        event_type: EventType,
        now: Millis,
    ) -> Result<Vec<Member>, StoreError> {
        let mut transaction = self.begin_write().await?;
        // Locking the group row serializes membership changes of one group, so concurrent additions neither
        // miscount nor deadlock on each other's member rows.
        if lock_group(&mut transaction, self.backend, guid).await?.is_none() {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        }
        let mut added = Vec::new();
        for new_member in members {
            if banned(&mut transaction, guid, &new_member.uid).await? {
                continue;
            }
            let member =
                Member { guid: guid.clone(), uid: new_member.uid.clone(), scope: new_member.scope, joined_at: now };
            match insert_member(&mut transaction, &member).await {
                Ok(()) => added.push(member),
                // Already a member: left as it is. A failed statement does not end the transaction on MySQL or
                // SQLite; only the statement is undone.
                Err(StoreError::Database(error)) if is_unique_violation(&error) => {}
                Err(error) => return Err(error),
            }
        }
        if !added.is_empty() {
            let added_count = i64::try_from(added.len()).unwrap_or(i64::MAX);
            sqlx::query("UPDATE chat_groups SET members_count = members_count + ? WHERE guid = ?")
                .bind(added_count)
                .bind(guid.as_str())
                .execute(&mut *transaction)
                .await?;
        }
        for member in &added {
            let data = json!({ "guid": member.guid, "uid": member.uid, "scope": member.scope });
            outbox::insert(&mut transaction, event_type, guid.as_str(), 0, now, &data).await?;
        }
        self.commit_events(transaction).await?;
        Ok(added)
    }

    /// Up to `limit` members of a group, ordered by uid, starting after the uid `after`.
    pub async fn list_members(&self, guid: &Guid, after: Option<&Uid>, limit: u32) -> Result<Vec<Member>, StoreError> {
        // Every uid is longer than the empty string, so "" means "from the start".
        let after = after.map_or("", Uid::as_str);
        let found = sqlx::query(
            "SELECT guid, uid, scope, joined_at FROM group_members WHERE guid = ? AND uid > ? ORDER BY uid LIMIT ?",
        )
        .bind(guid.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        found.iter().map(member_from_row).collect()
    }

    /// The membership of `uid` in a group, if any.
    pub async fn member(&self, guid: &Guid, uid: &Uid) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query("SELECT guid, uid, scope, joined_at FROM group_members WHERE guid = ? AND uid = ?")
            .bind(guid.as_str())
            .bind(uid.as_str())
            .fetch_optional(&self.reads)
            .await?;
        row.as_ref().map(member_from_row).transpose()
    }
}

/// Group moderation: listing, updating, deleting, members leaving or being removed, scopes and bans. Each change
/// commits with its outbox event, under the group's row lock (see [`Store::add_members`]).
impl Store {
    /// Up to `limit` groups ordered by guid, starting after `after`; deleted groups never appear.
    ///
    /// `viewer` `None` is the app and sees every group. A user sees public groups and the groups it is a member
    /// of, but not groups that banned it. `search` keeps groups whose name or guid contains it, ignoring ASCII
    /// case.
    pub async fn list_groups(
        &self,
        viewer: Option<&Uid>,
        search: Option<&str>,
        after: Option<&Guid>,
        limit: u32,
    ) -> Result<Vec<Group>, StoreError> {
        let mut sql = String::from(concat!(
            "SELECT ",
            group_columns!(),
            " FROM chat_groups WHERE deleted_at IS NULL AND guid > ?"
        ));
        if viewer.is_some() {
            sql.push_str(
                " AND (group_type = 'public' OR guid IN (SELECT guid FROM group_members WHERE uid = ?)) \
                 AND guid NOT IN (SELECT guid FROM group_bans WHERE uid = ?)",
            );
        }
        if search.is_some() {
            sql.push_str(" AND (LOWER(name) LIKE ? ESCAPE '!' OR LOWER(guid) LIKE ? ESCAPE '!')");
        }
        sql.push_str(" ORDER BY guid LIMIT ?");
        // The SQL is assembled from constant fragments only; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after.map_or("", Guid::as_str).to_owned());
        if let Some(viewer) = viewer {
            query = query.bind(viewer.as_str().to_owned()).bind(viewer.as_str().to_owned());
        }
        if let Some(search) = search {
            let pattern = contains_pattern(&search.to_ascii_lowercase());
            query = query.bind(pattern.clone()).bind(pattern);
        }
        let found = query.bind(i64::from(limit)).fetch_all(&self.reads).await?;
        found.iter().map(group_from_row).collect()
    }

    /// Applies `changes` and writes `group.updated` (data: the group after the change, as JSON).
    ///
    /// The stored password hash follows the type: a group that is not (or no longer) a password group keeps
    /// none. Fails with `NotFound("group")` when the group does not exist or was deleted.
    pub async fn update_group(&self, guid: &Guid, changes: &GroupChanges, now: Millis) -> Result<Group, StoreError> {
        let mut transaction = self.begin_write().await?;
        let Some(current) = lock_group(&mut transaction, self.backend, guid).await? else {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        };
        let updated = Group {
            name: changes.name.clone().unwrap_or(current.name),
            description: changes.description.clone().or(current.description),
            icon: changes.icon.clone().or(current.icon),
            metadata: changes.metadata.clone().or(current.metadata),
            group_type: changes.group_type.unwrap_or(current.group_type),
            updated_at: now,
            ..current
        };
        let event_data = serde_json::to_value(&updated).map_err(unencodable)?;
        let keeps_password = updated.group_type == GroupType::Password;
        let password_sql = match (&changes.password, keeps_password) {
            (PasswordChange::Keep, true) => "password_hash = password_hash",
            (PasswordChange::Set(_), true) => "password_hash = ?",
            (_, false) | (PasswordChange::Clear, true) => "password_hash = NULL",
        };
        let sql = format!(
            "UPDATE chat_groups SET name = ?, description = ?, icon = ?, metadata = ?, group_type = ?, \
             {password_sql}, updated_at = ? WHERE guid = ?"
        );
        // `password_sql` is one of the constant fragments above.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(updated.name.clone())
            .bind(updated.description.clone())
            .bind(updated.icon.clone())
            .bind(rows::optional_json_text(updated.metadata.as_ref()))
            .bind(updated.group_type.as_str());
        if let (PasswordChange::Set(hash), true) = (&changes.password, keeps_password) {
            query = query.bind(hash.clone());
        }
        query.bind(now).bind(guid.as_str().to_owned()).execute(&mut *transaction).await?;
        outbox::insert(&mut transaction, EventType::GroupUpdated, guid.as_str(), 0, now, &event_data).await?;
        self.commit_events(transaction).await?;
        Ok(updated)
    }

    /// Deletes a group (soft: the row stays with `deleted_at`, so its guid is never reused) and writes
    /// `group.deleted` (data `{"guid"}`). Fails with `NotFound("group")` when there is no such group.
    pub async fn delete_group(&self, guid: &Guid, now: Millis) -> Result<(), StoreError> {
        let mut transaction = self.begin_write().await?;
        if lock_group(&mut transaction, self.backend, guid).await?.is_none() {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        }
        sqlx::query("UPDATE chat_groups SET deleted_at = ?, updated_at = ? WHERE guid = ?")
            .bind(now)
            .bind(now)
            .bind(guid.as_str())
            .execute(&mut *transaction)
            .await?;
        let data = json!({ "guid": guid });
        outbox::insert(&mut transaction, EventType::GroupDeleted, guid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(())
    }

    /// Removes `uid` from the group; false (and no event) when it was not a member. `members_count` shrinks by
    /// one and `group.member_kicked` or `group.member_left` (data `{"guid", "uid"}`) is written.
    pub async fn remove_member(
        &self,
        guid: &Guid,
        uid: &Uid,
        departure: Departure,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        if lock_group(&mut transaction, self.backend, guid).await?.is_none() {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        }
        if !delete_member(&mut transaction, guid, uid).await? {
            transaction.rollback().await?;
            return Ok(false);
        }
        let event_type = match departure {
            Departure::Kicked => EventType::GroupMemberKicked,
            Departure::Left => EventType::GroupMemberLeft,
        };
        let data = json!({ "guid": guid, "uid": uid });
        outbox::insert(&mut transaction, event_type, guid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(true)
    }

    /// Gives a member a new scope and returns the membership; `None` when `uid` is not a member. A real change
    /// writes `group.member_scope_changed` (data `{"guid", "uid", "scope", "oldScope"}`); setting the scope a
    /// member already has writes nothing.
    pub async fn change_scope(
        &self,
        guid: &Guid,
        uid: &Uid,
        scope: Scope,
        now: Millis,
    ) -> Result<Option<Member>, StoreError> {
        let mut transaction = self.begin_write().await?;
        if lock_group(&mut transaction, self.backend, guid).await?.is_none() {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        }
        let row = sqlx::query("SELECT guid, uid, scope, joined_at FROM group_members WHERE guid = ? AND uid = ?")
            .bind(guid.as_str())
            .bind(uid.as_str())
            .fetch_optional(&mut *transaction)
            .await?;
        let Some(current) = row.as_ref().map(member_from_row).transpose()? else {
            transaction.rollback().await?;
            return Ok(None);
        };
        if current.scope == scope {
            transaction.rollback().await?;
            return Ok(Some(current));
        }
        sqlx::query("UPDATE group_members SET scope = ? WHERE guid = ? AND uid = ?")
            .bind(scope.as_str())
            .bind(guid.as_str())
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        let data = json!({ "guid": guid, "uid": uid, "scope": scope, "oldScope": current.scope });
        outbox::insert(&mut transaction, EventType::GroupMemberScopeChanged, guid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(Some(Member { scope, ..current }))
    }

    /// Makes the member `uid` the group's owner, an admin if it was not; the previous owner stays a member
    /// with its scope. Writes `group.owner_transferred` (data `{"guid", "owner", "oldOwner"}`) and returns the
    /// group. `Ok(None)`, and nothing written, when `uid` is not a member; naming the current owner changes
    /// nothing and writes no event. Fails with `NotFound("group")` when there is no such group.
    pub async fn transfer_ownership(&self, guid: &Guid, uid: &Uid, now: Millis) -> Result<Option<Group>, StoreError> {
        let mut transaction = self.begin_write().await?;
        let Some(current) = lock_group(&mut transaction, self.backend, guid).await? else {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        };
        let member = sqlx::query("SELECT uid FROM group_members WHERE guid = ? AND uid = ?")
            .bind(guid.as_str())
            .bind(uid.as_str())
            .fetch_optional(&mut *transaction)
            .await?;
        if member.is_none() {
            transaction.rollback().await?;
            return Ok(None);
        }
        if current.owner == *uid {
            transaction.rollback().await?;
            return Ok(Some(current));
        }
        sqlx::query("UPDATE chat_groups SET owner = ?, updated_at = ? WHERE guid = ?")
            .bind(uid.as_str())
            .bind(now)
            .bind(guid.as_str())
            .execute(&mut *transaction)
            .await?;
        sqlx::query("UPDATE group_members SET scope = ? WHERE guid = ? AND uid = ?")
            .bind(Scope::Admin.as_str())
            .bind(guid.as_str())
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        let data = json!({ "guid": guid, "owner": uid, "oldOwner": current.owner });
        outbox::insert(&mut transaction, EventType::GroupOwnerTransferred, guid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(Some(Group { owner: uid.clone(), updated_at: now, ..current }))
    }

    /// Bans `uid` from the group: its membership (if any) ends, `members_count` follows, and it cannot be added
    /// back until unbanned. Writes `group.member_banned` (data `{"guid", "uid", "wasMember"}`). False, and no
    /// event, when `uid` was already banned.
    pub async fn ban_member(&self, guid: &Guid, uid: &Uid, now: Millis) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        if lock_group(&mut transaction, self.backend, guid).await?.is_none() {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        }
        if banned(&mut transaction, guid, uid).await? {
            transaction.rollback().await?;
            return Ok(false);
        }
        let was_member = delete_member(&mut transaction, guid, uid).await?;
        sqlx::query("INSERT INTO group_bans (guid, uid, banned_at) VALUES (?, ?, ?)")
            .bind(guid.as_str())
            .bind(uid.as_str())
            .bind(now)
            .execute(&mut *transaction)
            .await?;
        let data = json!({ "guid": guid, "uid": uid, "wasMember": was_member });
        outbox::insert(&mut transaction, EventType::GroupMemberBanned, guid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(true)
    }

    /// Lifts a ban and writes `group.member_unbanned` (data `{"guid", "uid"}`); false, and no event, when `uid`
    /// was not banned. The user does not become a member again: it may be added back.
    pub async fn unban_member(&self, guid: &Guid, uid: &Uid, now: Millis) -> Result<bool, StoreError> {
        let mut transaction = self.begin_write().await?;
        if lock_group(&mut transaction, self.backend, guid).await?.is_none() {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        }
        let deleted = sqlx::query("DELETE FROM group_bans WHERE guid = ? AND uid = ?")
            .bind(guid.as_str())
            .bind(uid.as_str())
            .execute(&mut *transaction)
            .await?;
        if deleted.rows_affected() == 0 {
            transaction.rollback().await?;
            return Ok(false);
        }
        let data = json!({ "guid": guid, "uid": uid });
        outbox::insert(&mut transaction, EventType::GroupMemberUnbanned, guid.as_str(), 0, now, &data).await?;
        self.commit_events(transaction).await?;
        Ok(true)
    }

    /// True when `uid` is banned from the group.
    pub async fn is_banned(&self, guid: &Guid, uid: &Uid) -> Result<bool, StoreError> {
        let mut connection = self.pool.acquire().await?;
        banned(&mut connection, guid, uid).await
    }

    /// Up to `limit` bans of a group, ordered by uid, starting after the uid `after`.
    pub async fn list_bans(&self, guid: &Guid, after: Option<&Uid>, limit: u32) -> Result<Vec<Ban>, StoreError> {
        let found =
            sqlx::query("SELECT guid, uid, banned_at FROM group_bans WHERE guid = ? AND uid > ? ORDER BY uid LIMIT ?")
                .bind(guid.as_str())
                .bind(after.map_or("", Uid::as_str))
                .bind(i64::from(limit))
                .fetch_all(&self.reads)
                .await?;
        found
            .iter()
            .map(|row| {
                Ok(Ban {
                    guid: rows::guid(row, "guid")?,
                    uid: rows::uid(row, "uid")?,
                    banned_at: get(row, "banned_at")?,
                })
            })
            .collect()
    }
}

/// Locks a group's row until the transaction ends and returns the group; `None` if it does not exist or was
/// deleted.
///
/// SQLite needs no row lock: the transaction began with `BEGIN IMMEDIATE` and holds the database's write lock.
async fn lock_group(
    connection: &mut AnyConnection,
    backend: Backend,
    guid: &Guid,
) -> Result<Option<Group>, StoreError> {
    let sql = match backend {
        Backend::MySql => {
            concat!("SELECT ", group_columns!(), " FROM chat_groups WHERE guid = ? AND deleted_at IS NULL FOR UPDATE")
        }
        Backend::Sqlite => {
            concat!("SELECT ", group_columns!(), " FROM chat_groups WHERE guid = ? AND deleted_at IS NULL")
        }
    };
    let row = sqlx::query(sql).bind(guid.as_str()).fetch_optional(connection).await?;
    row.as_ref().map(group_from_row).transpose()
}

/// True when `uid` is banned from the group.
async fn banned(connection: &mut AnyConnection, guid: &Guid, uid: &Uid) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT uid FROM group_bans WHERE guid = ? AND uid = ?")
        .bind(guid.as_str())
        .bind(uid.as_str())
        .fetch_optional(connection)
        .await?;
    Ok(row.is_some())
}

/// Deletes one membership row and, when there was one, counts it out of `members_count`; true if it existed.
async fn delete_member(connection: &mut AnyConnection, guid: &Guid, uid: &Uid) -> Result<bool, StoreError> {
    let deleted = sqlx::query("DELETE FROM group_members WHERE guid = ? AND uid = ?")
        .bind(guid.as_str())
        .bind(uid.as_str())
        .execute(&mut *connection)
        .await?;
    if deleted.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("UPDATE chat_groups SET members_count = members_count - 1 WHERE guid = ?")
        .bind(guid.as_str())
        .execute(connection)
        .await?;
    Ok(true)
}

/// `value` as a LIKE pattern matching it anywhere, with `!` escaping the wildcards (portable: MySQL's default
/// escape is a backslash, SQLite has none, so the query names `ESCAPE '!'`).
fn contains_pattern(value: &str) -> String {
    let mut pattern = String::with_capacity(value.len() + 2);
    pattern.push('%');
    for character in value.chars() {
        if matches!(character, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

/// Inserts one membership row; a unique violation means the user is already a member.
async fn insert_member(connection: &mut AnyConnection, member: &Member) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO group_members (guid, uid, scope, joined_at) VALUES (?, ?, ?, ?)")
        .bind(member.guid.as_str())
        .bind(member.uid.as_str())
        .bind(member.scope.as_str())
        .bind(member.joined_at)
        .execute(connection)
        .await?;
    Ok(())
}

/// A group from a row selected with [`group_columns!`].
fn group_from_row(row: &AnyRow) -> Result<Group, StoreError> {
    Ok(Group {
        guid: rows::guid(row, "guid")?,
        name: get(row, "name")?,
        group_type: rows::named(row, "group_type", GroupType::parse)?,
        description: get(row, "description")?,
        icon: get(row, "icon")?,
        owner: rows::uid(row, "owner")?,
        metadata: rows::optional_json(row, "metadata")?,
        members_count: get(row, "members_count")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

/// A member from a `guid, uid, scope, joined_at` row.
fn member_from_row(row: &AnyRow) -> Result<Member, StoreError> {
    Ok(Member {
        guid: rows::guid(row, "guid")?,
        uid: rows::uid(row, "uid")?,
        scope: rows::named(row, "scope", Scope::parse)?,
        joined_at: get(row, "joined_at")?,
    })
}
