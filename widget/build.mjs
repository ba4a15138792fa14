// Builds widget/src into the one committed file static/engage/widget.js.
//   node build.mjs           write it
//   node build.mjs --check   exit 1 if the committed file differs from a fresh build (CI)
// The output depends only on the sources and the pinned esbuild version (package-lock.json).
import * as esbuild from 'esbuild'
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const here = (p) => fileURLToPath(new URL(p, import.meta.url))
const OUT = here('../static/engage/widget.js')

// `import css from './style.css'` gives the minified stylesheet as a string.
const cssText = {
  name: 'css-text',
  setup(build) {
    build.onLoad({ filter: /\.css$/ }, async (args) => {
      const { code } = await esbuild.transform(await readFile(args.path, 'utf8'), {
        loader: 'css',
        minify: true,
      })
      return { contents: 'export default ' + JSON.stringify(code.trim()), loader: 'js' }
    })
  },
}

const result = await esbuild.build({
  entryPoints: [here('src/index.js')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  legalComments: 'none',
  write: false,
  plugins: [cssText],
  // ASCII output (non-ASCII text as \u escapes): right whatever charset the file is served with,
  // and it gzips smaller than UTF-8 here.
  banner: { js: '/* Engage widget, built from widget/src: do not edit */' },
})
const built = Buffer.from(result.outputFiles[0].contents)
const size = `${built.length} bytes, ${gzipSync(built, { level: 9 }).length} gzipped (-9)`

if (process.argv.includes('--check')) {
  const committed = await readFile(OUT).catch(() => Buffer.alloc(0))
  if (!committed.equals(built)) {
    console.error(
      'static/engage/widget.js is not the build of widget/src: run `cd widget && node build.mjs` and commit it',
    )
    process.exit(1)
  }
  console.log(`static/engage/widget.js is up to date (${size})`)
} else {
  await writeFile(OUT, built)
  console.log(`wrote static/engage/widget.js (${size})`)
}
