import { postgresGlobalSetup } from './postgres.global.js';

export default postgresGlobalSetup(14);
