/**
 * Parsers for the credential files: an htpasswd file of bcrypt hashes (`htpasswd -B`, Apache's
 * format) and a token file with one bearer token per line. Both throw an Error whose message
 * names the line, never the secret on it.
 */

/** `$2a$`, `$2b$`, `$2y$`: the bcrypt variants htpasswd and every bcrypt library write. */
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;
/** RFC 6750 §2.1 b64token. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
export const MIN_TOKEN_LENGTH = 16;
/**
 * Each cost step doubles a check's CPU: cost 12 is about 0.25 s of a core per unknown header;
 * beyond it, a handful of clients with new headers would keep a core busy.
 */
export const MAX_BCRYPT_COST = 12;

function meaningfulLines(text: string): { line: string; number: number }[] {
  return text
    .split(/\r?\n/)
    .map((line, i) => ({ line: line.trim(), number: i + 1 }))
    .filter(({ line }) => line !== "" && !line.startsWith("#"));
}

export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const { line, number } of meaningfulLines(text)) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Error(`line ${number} is not user:hash`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT.test(hash)) {
      throw new Error(`line ${number} (user ${JSON.stringify(user)}) is not a bcrypt hash; create it with htpasswd -B (MD5, SHA-1 and crypt hashes are refused)`);
    }
    const cost = Number(hash.slice(4, 6));
    if (cost > MAX_BCRYPT_COST) {
      throw new Error(`line ${number} (user ${JSON.stringify(user)}) has bcrypt cost ${cost}; at most ${MAX_BCRYPT_COST} is accepted (each check costs 2^cost rounds of CPU): recreate it with htpasswd -B -C 10`);
    }
    if (users.has(user)) throw new Error(`line ${number}: user ${JSON.stringify(user)} is listed twice`);
    users.set(user, hash);
  }
  return users;
}

export function parseTokens(text: string): string[] {
  const tokens = meaningfulLines(text).map(({ line, number }) => {
    if (!TOKEN.test(line)) throw new Error(`line ${number} is not a bearer token (letters, digits and -._~+/ only)`);
    if (line.length < MIN_TOKEN_LENGTH) throw new Error(`line ${number} is a token shorter than ${MIN_TOKEN_LENGTH} characters; use a random one (openssl rand -hex 32)`);
    return line;
  });
  return [...new Set(tokens)];
}
