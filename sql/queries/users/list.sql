-- Admin listing, keyset-paginated by id.
SELECT id, email, role, display_name AS "displayName", claims, is_active AS active, created_at AS "createdAt"
  FROM ${schema:name}.users
 WHERE id > ${after}
 ORDER BY id
 LIMIT ${limit}
