// The Workers types that the generated Env (worker-configuration.d.ts, from `npm run types`) names,
// taken from @cloudflare/workers-types as a module so that they do not replace the DOM and Node
// globals the rest of the project compiles against.
type R2Bucket = import("@cloudflare/workers-types/index.ts").R2Bucket;
