//! Groups and their members.

use comet_model::{EventType, Group, GroupType, Guid, Member, Millis, NewGroup, NewMember, Scope, Uid};
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
        transaction.commit().await?;
        Ok(created)
    }

    /// The group with this guid.
    pub async fn get_group(&self, guid: &Guid) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", group_columns!(), " FROM chat_groups WHERE guid = ?"))
            .bind(guid.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    /// The password hash of a password group; `None` for other groups and for a guid that does not exist.
    pub async fn group_password_hash(&self, guid: &Guid) -> Result<Option<String>, StoreError> {
        let hash: Option<Option<String>> = sqlx::query_scalar("SELECT password_hash FROM chat_groups WHERE guid = ?")
            .bind(guid.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(hash.flatten())
    }

    /// Adds members to a group in one transaction and returns the ones added.
    ///
    /// Users already in the group keep their scope and are not returned (a uid listed twice is added once), so
    /// a retried request changes nothing. `members_count` grows by the number added, and each added member gets
    /// a `group.member_added` event (data `{"guid", "uid", "scope"}`). Fails with `NotFound("group")` when the
    /// group does not exist.
    pub async fn add_members(
        &self,
        guid: &Guid,
        members: &[NewMember],
        now: Millis,
    ) -> Result<Vec<Member>, StoreError> {
        let mut transaction = self.begin_write().await?;
        // Locking the group row serializes membership changes of one group, so concurrent additions neither
        // miscount nor deadlock on each other's member rows.
        if !lock_group(&mut transaction, self.backend, guid).await? {
            transaction.rollback().await?;
            return Err(StoreError::NotFound("group"));
        }
        let mut added = Vec::new();
        for new_member in members {
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
            outbox::insert(&mut transaction, EventType::GroupMemberAdded, guid.as_str(), 0, now, &data).await?;
        }
        transaction.commit().await?;
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
        .fetch_all(&self.pool)
        .await?;
        found.iter().map(member_from_row).collect()
    }

    /// The membership of `uid` in a group, if any.
    pub async fn member(&self, guid: &Guid, uid: &Uid) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query("SELECT guid, uid, scope, joined_at FROM group_members WHERE guid = ? AND uid = ?")
            .bind(guid.as_str())
            .bind(uid.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(member_from_row).transpose()
    }
}

/// Locks a group's row until the transaction ends; false if the group does not exist.
///
/// SQLite needs no row lock: the transaction began with `BEGIN IMMEDIATE` and holds the database's write lock.
async fn lock_group(connection: &mut AnyConnection, backend: Backend, guid: &Guid) -> Result<bool, StoreError> {
    let sql = match backend {
        Backend::MySql => "SELECT guid FROM chat_groups WHERE guid = ? FOR UPDATE",
        Backend::Sqlite => "SELECT guid FROM chat_groups WHERE guid = ?",
    };
    let row = sqlx::query(sql).bind(guid.as_str()).fetch_optional(connection).await?;
    Ok(row.is_some())
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
