// The seed's Node.js signature verification, run for real by tests/unit/test_seed_verification.py.
//
// Between the BEGIN and END markers: the "Signature Verification" example of the public
// webhooks docs, copied verbatim (do not edit it: the point is that the docs' code verifies us).
// Around it, the smallest stand-ins for Express, so the example runs unchanged:
//   - app.post(path, handler) registers the handler;
//   - req.body is JSON.parse of the raw UTF-8 body, which is what express.json() does;
//   - req.headers has lower-case names, as Node's http module gives them;
//   - res.status(code).send(text) records the answer; a throw is a 500, as in Express.
//
// stdin:  a JSON array of cases {body_base64, headers, secret}
// stdout: {node: process.version, results: [{status, text, processed, error}, ...]}
'use strict';

const fs = require('fs');

const routes = {};
const app = {
  post(path, handler) {
    routes[path] = handler;
  },
};
const processed = [];
function processWebhook(event) {
  processed.push(event);
}

// ---- BEGIN seed example (verbatim) ----
const crypto = require('crypto');

function verifyWebhook(payload, signature, secret) {
  const hmac = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');
  
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(hmac)
  );
}

// Express middleware
app.post('/webhook', (req, res) => {
  const signature = req.headers['x-webhook-signature'];
  const payload = JSON.stringify(req.body);
  
  if (!verifyWebhook(payload, signature, process.env.WEBHOOK_SECRET)) {
    return res.status(401).send('Invalid signature');
  }
  
  // Process webhook
  processWebhook(req.body);
  res.status(200).send('OK');
});
// ---- END seed example ----

function run(testCase) {
  const raw = Buffer.from(testCase.body_base64, 'base64');
  const headers = {};
  for (const [name, value] of Object.entries(testCase.headers)) {
    headers[name.toLowerCase()] = value;
  }
  process.env.WEBHOOK_SECRET = testCase.secret;
  const req = { headers, body: JSON.parse(raw.toString('utf8')) };
  const res = {
    statusCode: 200,
    text: null,
    status(code) {
      this.statusCode = code;
      return this;
    },
    send(text) {
      this.text = text;
      return this;
    },
  };
  const before = processed.length;
  try {
    routes['/webhook'](req, res);
  } catch (error) {
    return { status: 500, text: null, processed: false, error: String(error) };
  }
  return { status: res.statusCode, text: res.text, processed: processed.length > before, error: null };
}

const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify({ node: process.version, results: cases.map(run) }));
