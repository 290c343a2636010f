/**
 * A signing key and, while a rotation overlaps, the one it replaced: what the current key
 * signs, both verify, the previous one until `previousUntil` (epoch ms). Tokens, pull
 * cursors and snapshot page URLs are checked this way, so a new key can be deployed
 * without logging phones out or making them drop their data: set the new key, keep the
 * old one as *_PREVIOUS until every token, cursor and URL signed with it has been
 * replaced (README "Rotating keys").
 */
export interface Keyring {
  current: string;
  previous?: { secret: string; until: number };
}
