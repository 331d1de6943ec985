// ESLint (flat config) for the dashboard's ES modules in
// internal/dashboard/static; tsc --checkJs (tsconfig.json) checks the types.
// lint.sh runs it from the repository's root with --config, so the paths
// below are from there.
import js from '@eslint/js';
import globals from 'globals';

export default [
  {
    files: ['internal/dashboard/static/**/*.js'],
    ...js.configs.recommended,
  },
  {
    files: ['internal/dashboard/static/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      // Bugs waiting to happen.
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-shadow': 'error',
      'no-implicit-globals': 'error',
      'no-unused-vars': ['error', { args: 'after-used', caughtErrors: 'none' }],
      'no-use-before-define': ['error', { functions: false, classes: true, variables: true }],
      'no-param-reassign': 'error',
      'no-return-assign': 'error',
      'no-promise-executor-return': 'error',
      'require-atomic-updates': 'off', // flags every `await` in a view; the views check `disposed`
      // The UI builds DOM with createElement and textContent only (dom.js):
      // no markup from strings, no eval.
      'no-restricted-properties': [
        'error',
        { property: 'innerHTML', message: 'Build nodes with h() and textContent (dom.js).' },
        { property: 'outerHTML', message: 'Build nodes with h() and textContent (dom.js).' },
        { property: 'insertAdjacentHTML', message: 'Build nodes with h() and textContent (dom.js).' },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name='document'][callee.property.name='write']", message: 'No document.write.' },
      ],
      'no-eval': 'error',
      'no-implied-eval': 'error',
      'no-new-func': 'error',
      // Nothing from another origin: the dashboard works offline.
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(?!\\./)', message: 'Import the dashboard\'s own modules only (./x.js).' }] }],
    },
  },
];
