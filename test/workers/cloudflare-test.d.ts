// The part of the pool's "cloudflare:test" module these tests use, typed without the Workers type package.
declare module "cloudflare:test" {
  export const SELF: { fetch(input: string, init?: RequestInit): Promise<Response> };
  export const env: {
    PLUGINS: {
      put(key: string, value: Uint8Array | string): Promise<unknown>;
    };
  };
}
